"""A data build's clips fitted to a model, and the condition banks drawn from its TRAINING clips the way
the paper samples (§4.1: class, text, image prior = the clip's first frame, motion = the clip's motion)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from filter.reference import fit_clip
from generator.conditions import BankConditions
from generator.motion import resize_motion_field
from ingest.manifest import MANIFEST_NAME, ClipRecord, load_clip, load_manifest, manifest_checksum


@dataclass(frozen=True)
class RealClips:
    """uint8 clips `(N, F, H, W)` at the model's frame count and size, with their manifest records."""

    records: list[ClipRecord]
    clips: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([record.class_index for record in self.records], dtype=np.int64)

    @property
    def patients(self) -> list[str]:
        return [record.patient_id for record in self.records]


@dataclass(frozen=True)
class DataBuild:
    data_dir: Path
    manifest_sha256: str
    class_names: list[str]
    train: RealClips
    test: RealClips


def load_data_build(
    data_dir: Path, class_names: list[str], num_frames: int, height: int, width: int
) -> DataBuild:
    """Both splits of a data build, checked against the model's class names."""
    data_dir = Path(data_dir)
    manifest = data_dir / MANIFEST_NAME
    records = load_manifest(manifest)
    for record in records:
        if record.class_index >= len(class_names) or class_names[record.class_index] != record.class_name:
            raise ValueError(
                f"{record.clip_id}: class {record.class_name!r} (index {record.class_index}) is not the "
                f"model's class {record.class_index} of {class_names}"
            )
    splits = {}
    for split in ("train", "test"):
        chosen = [record for record in records if record.split == split]
        if not chosen:
            raise ValueError(f"{manifest} has no {split!r} clips")
        clips = np.stack([fit_clip(load_clip(data_dir, r), num_frames, height, width) for r in chosen])
        splits[split] = RealClips(chosen, clips)
    return DataBuild(data_dir, manifest_checksum(manifest), class_names, splits["train"], splits["test"])


def motion_condition(
    data_dir: Path, record: ClipRecord, num_frames: int, height: int, width: int
) -> np.ndarray:
    """The clip's cached motion field (ingest's codec path), its first `num_frames` fitted to the model."""
    with np.load(Path(data_dir) / record.motion_path, allow_pickle=False) as cache:
        field = np.asarray(cache["field"], dtype=np.float32)[:num_frames]
    return resize_motion_field(field, (height, width)).astype(np.float32)


@dataclass(frozen=True)
class SourcedBank:
    """A condition bank and the training clip it came from (index into `DataBuild.train`)."""

    source: int
    bank: BankConditions


def training_banks(build: DataBuild, banks_per_class: int) -> list[SourcedBank]:
    """`banks_per_class` banks per class from training clips spread evenly over each class's clips (in
    manifest order): class, text, first frame as the image prior and the clip's motion field."""
    if banks_per_class < 1:
        raise ValueError(f"banks_per_class must be >= 1, got {banks_per_class}")
    banks = []
    labels = build.train.labels
    num_frames, height, width = build.train.clips.shape[1:]
    for class_index in range(len(build.class_names)):
        members = np.flatnonzero(labels == class_index)
        if members.size == 0:
            continue
        picks = members[np.unique(np.linspace(0, members.size - 1, banks_per_class).round().astype(int))]
        for source in picks.tolist():
            record = build.train.records[source]
            bank = BankConditions(
                class_index=class_index,
                text=record.text,
                image_prior=build.train.clips[source, 0].copy(),
                motion_field=motion_condition(build.data_dir, record, num_frames, height, width),
            )
            banks.append(SourcedBank(source, bank))
    return banks
