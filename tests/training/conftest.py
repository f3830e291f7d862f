"""A tiny real clip set (the pydicom echocardiogram cine, 32x32) and tiny stage configs, built on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

CLASSES = ("early", "late")
FRAMES = 8
SIZE = 32


def _echo_frames(count: int) -> np.ndarray:
    """`count` gray frames of the apical four-chamber echo cine, cropped to the sector and resized."""
    import torch.nn.functional as F
    from pydicom.data import get_testdata_file
    from pydicom.pixels import iter_pixels

    cine = np.stack(list(iter_pixels(get_testdata_file("color3d_jpeg_baseline.dcm"), indices=range(count))))
    gray = torch.from_numpy(cine[:, 20:450, 105:535].mean(-1, dtype=np.float32))[:, None]
    small = F.interpolate(gray, size=(SIZE, SIZE), mode="bilinear", antialias=True)[:, 0]
    return small.round().clamp(0, 255).to(torch.uint8).numpy()


@pytest.fixture(scope="session")
def clip_set_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 train clips of 8 frames: 5 labelled (two classes, a text each) and 1 unlabelled from centre "b"."""
    import json

    from ingest.manifest import ClipRecord, write_manifest
    from ingest.npz import sha256_file

    root = tmp_path_factory.mktemp("clipset")
    (root / "clips").mkdir()
    (root / "motion").mkdir()
    frames = _echo_frames(6 * FRAMES)
    records = []
    for i in range(6):
        clip_id = f"echo-{i}"
        path = root / "clips" / f"{clip_id}.npz"
        clip = frames[i * FRAMES : (i + 1) * FRAMES]
        # The "late" class is mirrored, so that the two classes differ visibly.
        np.savez(path, frames=np.ascontiguousarray(clip[..., ::-1]) if i % 2 else clip)
        field = np.zeros((FRAMES, 2, SIZE, SIZE), np.float32)
        field[1:, 0] = float(i % 3)
        np.savez(root / "motion" / f"{clip_id}.npz", field=field)
        labelled = i < 5
        class_index = i % 2 if labelled else len(CLASSES)
        records.append(
            ClipRecord(
                clip_id=clip_id,
                path=f"clips/{clip_id}.npz",
                sha256=sha256_file(path),
                class_name=CLASSES[class_index] if labelled else "unlabelled",
                class_index=class_index,
                text=f"apical four-chamber echo, {CLASSES[class_index]} systole" if labelled else "",
                patient_id=f"p{i}",
                split="train",
                source="centre-a" if labelled else "centre-b",
                frames=FRAMES,
                height=SIZE,
                width=SIZE,
                modality="US",
            )
        )
    write_manifest(root / "manifest.jsonl", records)
    (root / "classes.json").write_text(json.dumps({"class_names": list(CLASSES)}))
    return root
