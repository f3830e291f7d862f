"""The clip-set manifest (`manifest.jsonl`): one `ClipRecord` per clip, checksums to verify them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import ConfigDict, ValidationError

from contracts.manifest import ManifestLine
from ingest.errors import describe_validation_error
from ingest.npz import sha256_file

MANIFEST_NAME = "manifest.jsonl"
CLASSES_NAME = "classes.json"
REPORT_NAME = "report.json"


class ClipRecord(ManifestLine):
    """One clip. `path` (and the motion cache `motion/<clip_id>.npz`) are relative to the data dir.

    `split_by` is "patient" when the clip's patient sits wholly on one side, "time" when its
    patient is the only one of a class and its clips were split by time (docs/decisions.md).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    text: str
    patient_id: str
    source: str
    frames: int
    height: int
    width: int
    modality: str | None
    split_by: Literal["patient", "time"] = "patient"
    source_part: str = ""
    start_frame: int = 0
    stride: int = 1
    window: str = ""
    motion_sha256: str | None = None

    @property
    def motion_path(self) -> str:
        return f"motion/{self.clip_id}.npz"


def write_manifest(path: Path, records: Iterable[ClipRecord]) -> str:
    """Write one JSON object per line (atomically) and return the manifest's SHA-256."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(record.model_dump_json() + "\n" for record in records), encoding="utf-8")
    os.replace(partial, path)
    return manifest_checksum(path)


def load_manifest(path: Path | str) -> list[ClipRecord]:
    """Records in file order; a bad line raises ValueError naming the line and field."""
    path = Path(path)
    records = []
    for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            records.append(ClipRecord.model_validate(json.loads(text)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path.name} line {line}: not JSON: {exc.msg}") from None
        except ValidationError as exc:
            raise ValueError(f"{path.name} line {line}: {describe_validation_error(exc)}") from None
    return records


def manifest_checksum(path: Path | str) -> str:
    """SHA-256 of the manifest file's bytes (it names every clip's SHA-256, so it seals the set)."""
    return sha256_file(Path(path))


def verify_clips(data_dir: Path, records: Iterable[ClipRecord]) -> list[str]:
    """Problems found, one line each ("<clip_id>: ..."); empty when every file matches its checksum."""
    problems = []
    for record in records:
        for relative, expected in ((record.path, record.sha256), (record.motion_path, record.motion_sha256)):
            if expected is None:
                continue
            file = data_dir / relative
            if not file.is_file():
                problems.append(f"{record.clip_id}: {relative} is missing")
            elif sha256_file(file) != expected:
                problems.append(f"{record.clip_id}: {relative} does not match its SHA-256 {expected}")
    return problems


def load_clip(data_dir: Path, record: ClipRecord, verify: bool = True) -> np.ndarray:
    """The clip's uint8 `(F, H, W)` frames; with `verify`, a checksum mismatch raises ValueError."""
    file = data_dir / record.path
    if verify and sha256_file(file) != record.sha256:
        raise ValueError(f"{record.clip_id}: {record.path} does not match its SHA-256 {record.sha256}")
    with np.load(file, allow_pickle=False) as clip:
        return np.asarray(clip["frames"])
