"""Shared fixtures: small, separable clip sets (class 0 dark, class 1 bright) on disk."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

CLASS_NAMES = ["dark", "bright"]


def separable_clips(count: int, seed: int, frames: int = 8, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Half dark (pixels 0–90), half bright (165–255) noisy clips, labels alternating."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 2
    low = np.where(labels == 1, 165, 0)[:, None, None, None]
    clips = (low + rng.integers(0, 91, size=(count, frames, size, size))).astype(np.uint8)
    return clips, labels


def npz_bytes(frames: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, frames=frames)
    return buffer.getvalue()


def write_real_manifest(root: Path, train: int = 12, test: int = 12, seed: int = 0) -> Path:
    """An ingest-style clip set: manifest.jsonl + clips/*.npz (docs/contracts.md, ingest/)."""
    (root / "clips").mkdir(parents=True)
    lines = []
    for split, count, offset in (("train", train, 0), ("test", test, 1)):
        clips, labels = separable_clips(count, seed + offset)
        for index, (clip, label) in enumerate(zip(clips, labels, strict=True)):
            payload = npz_bytes(clip)
            relative = f"clips/{split}-{index:03d}.npz"
            (root / relative).write_bytes(payload)
            lines.append(
                json.dumps(
                    {
                        "clip_id": f"{split}-{index:03d}",
                        "path": relative,
                        "sha256": hashlib.sha256(payload).hexdigest(),
                        "class_name": CLASS_NAMES[label],
                        "class_index": int(label),
                        "text": "",
                        "patient_id": f"p{index}",
                        "split": split,
                        "source": "synthetic-test",
                        "frames": clip.shape[0],
                        "height": clip.shape[1],
                        "width": clip.shape[2],
                        "modality": "US",
                    }
                )
            )
    manifest = root / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def write_synthetic_db(
    root: Path, count: int = 16, seed: int = 5, size: int = 32, extra_rows: list[dict[str, str]] | None = None
) -> Path:
    """A filtered synthetic database folder in the format of docs/contracts.md."""
    clips, labels = separable_clips(count, seed, size=size)
    (root / "clips").mkdir(parents=True)
    rows = []
    for index, (clip, label) in enumerate(zip(clips, labels, strict=True)):
        payload = npz_bytes(clip)
        relative = f"clips/clip-{index:04d}.npz"
        (root / relative).write_bytes(payload)
        rows.append(
            {
                "path": relative,
                "sha256": hashlib.sha256(payload).hexdigest(),
                "class": CLASS_NAMES[label],
                "class_index": str(label),
                "vae_seq": f"{0.9 + 0.001 * index:.4f}",
            }
        )
    rows += extra_rows or []
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "sha256", "class", "class_index", "vae_seq"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def real_manifest(tmp_path: Path) -> Path:
    return write_real_manifest(tmp_path / "real")


@pytest.fixture
def synthetic_db(tmp_path: Path) -> Path:
    return write_synthetic_db(tmp_path / "synthetic")
