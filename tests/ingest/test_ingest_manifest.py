"""Manifest round trip, checksums that verify and catch tampering, byte-reproducible NPZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.manifest import (
    ClipRecord,
    load_clip,
    load_manifest,
    manifest_checksum,
    verify_clips,
    write_manifest,
)
from ingest.npz import save_npz, sha256_file


def _record(data_dir: Path, clip_id: str, frames: np.ndarray) -> ClipRecord:
    digest = save_npz(data_dir / f"clips/{clip_id}.npz", frames=frames)
    return ClipRecord(
        clip_id=clip_id,
        path=f"clips/{clip_id}.npz",
        sha256=digest,
        class_name="US",
        class_index=0,
        text="echo",
        patient_id="p1",
        split="train",
        source="a.dcm",
        frames=frames.shape[0],
        height=frames.shape[1],
        width=frames.shape[2],
        modality="US",
    )


def test_save_npz_is_byte_reproducible_and_loadable(tmp_path: Path) -> None:
    frames = np.random.default_rng(1).integers(0, 255, (8, 16, 16), dtype=np.uint8)
    first = save_npz(tmp_path / "a.npz", frames=frames)
    second = save_npz(tmp_path / "b.npz", frames=frames)
    assert first == second == sha256_file(tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz", allow_pickle=False) as loaded:
        np.testing.assert_array_equal(loaded["frames"], frames)
    assert not list(tmp_path.glob("*.partial"))


def test_manifest_round_trip_and_checksum(tmp_path: Path) -> None:
    records = [_record(tmp_path, f"c{i}", np.full((8, 4, 4), i, np.uint8)) for i in range(3)]
    digest = write_manifest(tmp_path / "manifest.jsonl", records)
    assert (
        digest == manifest_checksum(tmp_path / "manifest.jsonl") == sha256_file(tmp_path / "manifest.jsonl")
    )
    assert load_manifest(tmp_path / "manifest.jsonl") == records
    assert verify_clips(tmp_path, records) == []
    assert load_clip(tmp_path, records[2])[0, 0, 0] == 2


def test_tampered_clip_is_detected(tmp_path: Path) -> None:
    record = _record(tmp_path, "c0", np.zeros((8, 4, 4), np.uint8))
    clip = tmp_path / record.path
    save_npz(clip, frames=np.ones((8, 4, 4), np.uint8))
    assert verify_clips(tmp_path, [record]) == [
        f"c0: clips/c0.npz does not match its SHA-256 {record.sha256}"
    ]
    with pytest.raises(ValueError, match="c0: clips/c0.npz does not match its SHA-256"):
        load_clip(tmp_path, record)
    clip.unlink()
    assert verify_clips(tmp_path, [record]) == ["c0: clips/c0.npz is missing"]


def test_tampered_motion_cache_is_detected(tmp_path: Path) -> None:
    record = _record(tmp_path, "c0", np.zeros((8, 4, 4), np.uint8))
    digest = save_npz(tmp_path / record.motion_path, field=np.zeros((8, 2, 4, 4), np.float32))
    record = record.model_copy(update={"motion_sha256": digest})
    assert verify_clips(tmp_path, [record]) == []
    save_npz(tmp_path / record.motion_path, field=np.ones((8, 2, 4, 4), np.float32))
    assert verify_clips(tmp_path, [record]) == [f"c0: motion/c0.npz does not match its SHA-256 {digest}"]


def test_edited_manifest_changes_its_checksum(tmp_path: Path) -> None:
    record = _record(tmp_path, "c0", np.zeros((8, 4, 4), np.uint8))
    before = write_manifest(tmp_path / "manifest.jsonl", [record])
    write_manifest(tmp_path / "manifest.jsonl", [record.model_copy(update={"class_name": "CT"})])
    assert manifest_checksum(tmp_path / "manifest.jsonl") != before


def test_bad_manifest_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text('{"clip_id": "x"}\n')
    with pytest.raises(
        ValueError, match=r"manifest\.jsonl line 1: field 'path': Field required; field 'sha256'"
    ):
        load_manifest(tmp_path / "manifest.jsonl")
