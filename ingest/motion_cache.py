"""Motion fields (and MFA pathways) computed once per clip and cached as `motion/<clip_id>.npz`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ingest.manifest import ClipRecord, load_clip
from ingest.npz import save_npz


def clip_seed(seed: int, clip_id: str) -> int:
    """A per-clip seed that depends only on the build seed and the clip's id."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{clip_id}".encode()).digest()[:4], "big")


def cache_motion(
    data_dir: Path,
    records: list[ClipRecord],
    seed: int,
    pathway_m: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[ClipRecord], bool]:
    """Write `field` float32 (F, 2, H, W) for every clip, plus `pathways` int64 (P, F) sampled with
    `pathway_m` and `pathways_seed` (paper §3.4 MFA) when H and W are multiples of `pathway_m`.

    Returns the records with `motion_sha256` filled and whether pathways were cached.
    """
    from generator.motion import extract_motion_field
    from generator.pathways import sample_pathways

    updated = []
    with_pathways = bool(records) and all(
        r.height % pathway_m == 0 and r.width % pathway_m == 0 for r in records
    )
    for done, record in enumerate(records, start=1):
        frames = load_clip(data_dir, record)
        field = np.asarray(extract_motion_field(frames), dtype=np.float32)
        if field.shape != (record.frames, 2, record.height, record.width):
            raise ValueError(f"{record.clip_id}: motion field shape {field.shape} does not match the clip")
        arrays: dict[str, np.ndarray] = {"field": field}
        if with_pathways:
            pathway_seed = clip_seed(seed, record.clip_id)
            arrays["pathways"] = sample_pathways(field, m=pathway_m, seed=pathway_seed).numpy()
            arrays["pathways_m"] = np.array(pathway_m, dtype=np.int64)
            arrays["pathways_seed"] = np.array(pathway_seed, dtype=np.int64)
        digest = save_npz(data_dir / record.motion_path, **arrays)
        updated.append(record.model_copy(update={"motion_sha256": digest}))
        if progress is not None:
            progress(done, len(records))
    return updated, with_pathways
