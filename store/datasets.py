"""Registering a data build's TRAINING clips as condition sources (`banks_from`); test clips never enter."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts.manifest import ManifestLine
from store.assets import AssetObjects, add_asset_row, npy_bytes, write_asset_objects
from store.audit import append_event
from store.models import AssetKind, Dataset, DatasetClip
from store.unit_of_work import StagedObjects

MotionExtractor = Callable[[np.ndarray], np.ndarray]
NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def read_manifest(manifest_path: Path) -> list[ManifestLine]:
    lines: list[ManifestLine] = []
    for number, raw in enumerate(manifest_path.read_text().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            lines.append(ManifestLine.model_validate(json.loads(raw)))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise ValueError(f"manifest line {number}: {exc}") from exc
    if not lines:
        raise ValueError(f"manifest: {manifest_path} has no clips")
    return lines


def class_names_of(lines: list[ManifestLine]) -> list[str]:
    names: dict[int, str] = {}
    for line in lines:
        if names.setdefault(line.class_index, line.class_name) != line.class_name:
            raise ValueError(
                f"manifest: class_index {line.class_index} names both {names[line.class_index]!r} "
                f"and {line.class_name!r}"
            )
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"manifest: class indices {sorted(names)} are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


def _inside(root: Path, relative: str, field: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"{field}: {relative!r} points outside the data folder")
    return path


@dataclass(frozen=True)
class ClipBounds:
    """The largest training clip registered (settings `condition_max_frames`, `condition_max_side`): what a
    model can use, so a clip's arrays are checked from their NPY headers before anything is inflated."""

    max_frames: int
    max_side: int
    max_file_bytes: int


def _npz_member_header(data: bytes | Path, member: str, what: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from the NPY header of one NPZ member, read without inflating its data."""
    try:
        with zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data) as archive:
            with archive.open(f"{member}.npy") as stream:
                version = np.lib.format.read_magic(stream)
                if version not in NPY_HEADER_READERS:
                    raise ValueError(f"NPY format version {version} is not supported")
                shape, _, dtype = NPY_HEADER_READERS[version](stream)
    except KeyError as exc:
        raise ValueError(f"{what}: no '{member}' array") from exc
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise ValueError(f"{what}: unreadable NPZ ({exc})") from exc
    return tuple(shape), dtype


def _clip_frames(data: bytes, clip_id: str, bounds: ClipBounds) -> np.ndarray:
    shape, dtype = _npz_member_header(data, "frames", f"clip {clip_id}")
    if dtype != np.uint8 or len(shape) != 3:
        raise ValueError(f"clip {clip_id}: frames must be uint8 (F, H, W), got {dtype} {shape}")
    if shape[0] > bounds.max_frames or max(shape[1:]) > bounds.max_side:
        raise ValueError(
            f"clip {clip_id}: frames {shape} exceed what a model can use ({bounds.max_frames} frames of at "
            f"most {bounds.max_side}×{bounds.max_side}; condition_max_frames, condition_max_side)"
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return npz["frames"]


def _motion_field(root: Path, line: ManifestLine, frames: np.ndarray, extract: MotionExtractor) -> np.ndarray:
    cached = root / "motion" / f"{line.clip_id}.npz"
    expected = (frames.shape[0], 2, frames.shape[1], frames.shape[2])
    if cached.is_file():
        shape, dtype = _npz_member_header(cached, "field", f"clip {line.clip_id} motion")
        if shape != expected or dtype.kind != "f":
            raise ValueError(f"clip {line.clip_id}: motion field {dtype} {shape}, expected float {expected}")
        with np.load(cached, allow_pickle=False) as npz:
            field = npz["field"]
    else:
        field = extract(frames)
    if field.shape != expected:
        raise ValueError(f"clip {line.clip_id}: motion field shape {field.shape}, expected {expected}")
    return field.astype(np.float32)


@dataclass(frozen=True)
class _PreparedClip:
    line: ManifestLine
    prior: AssetObjects
    motion: AssetObjects


def _prepare_clip(
    staged: StagedObjects,
    project_id: uuid.UUID,
    root: Path,
    line: ManifestLine,
    extract_motion: MotionExtractor,
    bounds: ClipBounds,
) -> _PreparedClip:
    """Check one training clip, compute its first frame and motion field and write their objects: the slow
    part of a registration, done before any row is written."""
    clip_path = _inside(root, line.path, f"clip {line.clip_id} path")
    if clip_path.is_file() and clip_path.stat().st_size > bounds.max_file_bytes:
        raise ValueError(
            f"clip {line.clip_id}: {clip_path.stat().st_size} bytes, more than the upload limit of "
            f"{bounds.max_file_bytes}"
        )
    clip_bytes = clip_path.read_bytes()
    if hashlib.sha256(clip_bytes).hexdigest() != line.sha256:
        raise ValueError(f"clip {line.clip_id}: file SHA-256 does not match the manifest")
    frames = _clip_frames(clip_bytes, line.clip_id, bounds)
    first_frame = frames[0]
    prior = write_asset_objects(
        staged,
        project_id=project_id,
        kind=AssetKind.image_prior,
        original=npy_bytes(first_frame),
        media_type="application/x-npy",
        filename=f"{line.clip_id}-frame0.npy",
        array=first_frame,
    )
    motion = write_asset_objects(
        staged,
        project_id=project_id,
        kind=AssetKind.reference_clip,
        original=clip_bytes,
        media_type="application/x-npz",
        filename=Path(line.path).name,
        array=_motion_field(root, line, frames, extract_motion),
    )
    return _PreparedClip(line=line, prior=prior, motion=motion)


def register_dataset(
    session: Session,
    staged: StagedObjects,
    *,
    project_id: uuid.UUID,
    name: str,
    manifest_path: Path,
    extract_motion: MotionExtractor,
    bounds: ClipBounds,
) -> Dataset:
    """Write an image-prior asset (first frame) and a reference-clip asset (motion) per training clip, then
    add the rows; a clip file or array beyond `bounds` is refused before it is read or inflated.

    Every clip is read, checked and its motion field computed before the first row is written, so the
    write transaction (on SQLite, the database's one write lock) lasts only for the inserts. Commit through
    `store.unit_of_work.unit_of_work`, which also removes the objects if anything fails.
    """
    if session.scalar(select(Dataset).where(Dataset.project_id == project_id, Dataset.name == name)):
        raise ValueError(f"name: dataset {name!r} already exists in this project")
    root = manifest_path.parent
    lines = read_manifest(manifest_path)
    class_names = class_names_of(lines)
    prepared = [
        _prepare_clip(staged, project_id, root, line, extract_motion, bounds)
        for line in lines
        if line.split == "train"
    ]
    if not prepared:
        raise ValueError(f"manifest: {manifest_path} has no training clips")
    dataset = Dataset(
        project_id=project_id,
        name=name,
        manifest_sha256=hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        class_names=class_names,
    )
    session.add(dataset)
    try:
        session.flush()
    except IntegrityError as exc:  # registered under the same name while this build's clips were prepared
        raise ValueError(f"name: dataset {name!r} already exists in this project") from exc
    for clip in prepared:
        dataset.clips.append(
            DatasetClip(
                clip_id=clip.line.clip_id,
                sha256=clip.line.sha256,
                class_name=clip.line.class_name,
                class_index=clip.line.class_index,
                text=clip.line.text,
                patient_id=clip.line.patient_id,
                image_prior_asset_id=add_asset_row(session, staged, project_id, clip.prior).id,
                motion_asset_id=add_asset_row(session, staged, project_id, clip.motion).id,
            )
        )
    session.flush()
    append_event(
        session,
        project_id,
        "dataset.registered",
        {
            "dataset_id": str(dataset.id),
            "name": name,
            "manifest_sha256": dataset.manifest_sha256,
            "training_clips": len(dataset.clips),
        },
    )
    return dataset


def extract_dataset_archive(archive: bytes, destination: Path, max_bytes: int) -> Path:
    """Unpack an uploaded dataset ZIP (manifest.jsonl + clips + motion cache); returns the manifest path."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        members = zf.infolist()
        if sum(m.file_size for m in members) > max_bytes:
            raise ValueError(f"file: archive unpacks to more than {max_bytes} bytes")
        for member in members:
            if member.is_dir():
                continue
            target = _inside(destination, member.filename, "file member")
            target.parent.mkdir(parents=True, exist_ok=True)
            # in pieces: zipfile inflates a member no further than the size its header declares
            with zf.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    manifests = sorted(destination.rglob("manifest.jsonl"), key=lambda p: len(p.parts))
    if not manifests:
        raise ValueError("file: archive has no manifest.jsonl")
    return manifests[0]
