"""Per-clip filter inputs (`S.npz`): group id, semantic loss and VAE latents, and optionally the scores
against the real training data with the feature space they were measured in; validated in and out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from filter.reference import ReferenceScores

SCORE_FIELDS = ("group", "loss", "latents")
REFERENCE_FIELDS = ("real_distance", "real_clip", "manifold_share")
# the ReferenceSettings fields that shaped the reference scores (a rerun cannot change them)
MEASURED_WITH = (
    "manifold_k",
    "manifold_features",
    "spectrum_bands",
    "feature_size",
    "feature_std_floor",
    "manifold_radius_quantile",
)


@dataclass(frozen=True)
class Scores:
    """`group` (N,) int or str, `loss` (N,) float, `latents` (N, frames >= 2, ...) float; `reference` and
    `measured_with` (the `MEASURED_WITH` settings) when the clips were scored against real data."""

    group: np.ndarray
    loss: np.ndarray
    latents: np.ndarray
    reference: ReferenceScores | None = None
    measured_with: dict[str, Any] | None = None


def check_scores(group: np.ndarray, loss: np.ndarray, latents: np.ndarray) -> Scores:
    """Return the arrays as `Scores`, or raise ValueError naming the field that is wrong."""
    group, loss, latents = np.asarray(group), np.asarray(loss), np.asarray(latents)
    if group.ndim != 1:
        raise ValueError(f"field 'group' must have shape (N,), got {group.shape}")
    n = group.shape[0]
    if n == 0:
        raise ValueError("field 'group' is empty: there are no clips to filter")
    if group.dtype.kind not in "iuU":
        raise ValueError(f"field 'group' must hold integers or strings, got dtype {group.dtype}")
    if loss.shape != (n,):
        raise ValueError(f"field 'loss' must have shape (N,) = ({n},), got {loss.shape}")
    if loss.dtype.kind not in "iuf":
        raise ValueError(f"field 'loss' must be numeric, got dtype {loss.dtype}")
    bad_loss = np.flatnonzero(~np.isfinite(loss))
    if bad_loss.size:
        raise ValueError(f"field 'loss' has non-finite values (first at clip {bad_loss[0]})")
    if latents.ndim < 3 or latents.shape[0] != n:
        raise ValueError(f"field 'latents' must have shape (N={n}, frames, ...), got {latents.shape}")
    if latents.shape[1] < 2:
        raise ValueError(f"field 'latents' needs at least 2 frames per clip, got {latents.shape[1]}")
    if latents.dtype.kind != "f":
        raise ValueError(f"field 'latents' must be floating point, got dtype {latents.dtype}")
    return Scores(group=group, loss=loss.astype(np.float64, copy=False), latents=latents)


def check_reference(reference: ReferenceScores, n: int) -> None:
    """Raise ValueError naming the reference field whose shape or values are wrong for `n` clips."""
    for name in REFERENCE_FIELDS:
        if np.shape(getattr(reference, name)) != (n,):
            raise ValueError(
                f"field {name!r} must have shape (N,) = ({n},), got {np.shape(getattr(reference, name))}"
            )
    for name in ("real_distance", "manifold_share"):
        values = np.asarray(getattr(reference, name), np.float64)
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError(f"field {name!r} must hold finite values >= 0")


def save_scores(
    path: str | Path,
    group: np.ndarray,
    loss: np.ndarray,
    latents: np.ndarray,
    reference: ReferenceScores | None = None,
    measured_with: dict[str, Any] | None = None,
) -> Path:
    """Validate, then write `S.npz` (uncompressed: latents barely compress)."""
    scores = check_scores(group, loss, latents)
    arrays: dict[str, np.ndarray] = {"group": scores.group, "loss": scores.loss, "latents": scores.latents}
    if reference is not None:
        check_reference(reference, scores.loss.shape[0])
        if measured_with is None or set(MEASURED_WITH) - set(measured_with):
            raise ValueError(f"field 'measured_with' must give {', '.join(MEASURED_WITH)}")
        arrays.update({name: np.asarray(getattr(reference, name)) for name in REFERENCE_FIELDS})
        arrays["measured_with"] = np.asarray(json.dumps({k: measured_with[k] for k in MEASURED_WITH}))
    path = Path(path)
    with path.open("wb") as fh:
        np.savez(fh, allow_pickle=False, **arrays)
    return path


def load_scores(path: str | Path) -> Scores:
    """Read and validate `S.npz`; errors name the missing or mis-shaped field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scores file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        missing = [name for name in SCORE_FIELDS if name not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing field(s) {', '.join(repr(m) for m in missing)}")
        arrays = {name: npz[name] for name in SCORE_FIELDS}
        has_reference = all(name in npz.files for name in (*REFERENCE_FIELDS, "measured_with"))
        reference = ReferenceScores(*(npz[name] for name in REFERENCE_FIELDS)) if has_reference else None
        measured_with = json.loads(str(npz["measured_with"])) if has_reference else None
    try:
        scores = check_scores(**arrays)
        if reference is not None:
            check_reference(reference, scores.loss.shape[0])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return Scores(scores.group, scores.loss, scores.latents, reference, measured_with)
