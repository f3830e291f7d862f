"""Training data from an ingested clip set: clip windows, single frames and (frame, text) pairs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from training.config import ConfigError, DataConfig

UNLABELLED_CLASS_NAME = "unlabelled"


@dataclass(frozen=True)
class ClipSet:
    """The records of one split of a clip set, with the class list of `classes.json`."""

    data_dir: Path
    records: tuple[Any, ...]  # ingest.manifest.ClipRecord
    class_names: tuple[str, ...]
    manifest_checksum: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def read_class_names(data_dir: Path) -> tuple[str, ...]:
    path = data_dir / "classes.json"
    if not path.is_file():
        raise ConfigError(f"data.data_dir: {path} is missing (run `ctrlgenaug data ...` first)")
    payload = json.loads(path.read_text())
    names = payload.get("class_names", payload.get("classes")) if isinstance(payload, dict) else payload
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ConfigError(f"data.data_dir: {path} must hold a list of class names")
    return tuple(name for name in names if name != UNLABELLED_CLASS_NAME)


def load_clip_set(data: DataConfig) -> ClipSet:
    from ingest.manifest import load_manifest, manifest_checksum

    manifest = data.data_dir / "manifest.jsonl"
    if not manifest.is_file():
        raise ConfigError(f"data.data_dir: {manifest} is missing (run `ctrlgenaug data ...` first)")
    records = tuple(r for r in load_manifest(manifest) if data.split == "all" or r.split == data.split)
    if not records:
        raise ConfigError(f"data.split: no clips with split {data.split!r} in {manifest}")
    return ClipSet(data.data_dir, records, read_class_names(data.data_dir), manifest_checksum(manifest))


def is_unlabelled(record: Any) -> bool:
    return record.class_index is None or record.class_name in (None, "", UNLABELLED_CLASS_NAME)


def class_label(record: Any, class_names: Sequence[str]) -> int:
    """The row of the clip's class in `classes.json`, or the null class `len(class_names)` for unlabelled
    clips (§4.7: their class condition is the null one)."""
    if is_unlabelled(record):
        return len(class_names)
    if record.class_name not in class_names:
        raise ConfigError(f"data: clip {record.clip_id} has class {record.class_name!r}, not in classes.json")
    return class_names.index(record.class_name)


def clip_text(record: Any, data: DataConfig) -> str:
    """The clip's descriptive text, the domain tag (e.g. a hospital id) prepended when configured (§4.7)."""
    text = record.text or ""
    field = data.domain_tag_field
    if field is None or (data.domain_tag_scope == "unlabelled" and not is_unlabelled(record)):
        return text
    if not hasattr(record, field):
        raise ConfigError(f"data.domain_tag_field: manifest records have no field {field!r}")
    tag = getattr(record, field)
    if tag in (None, ""):
        return text
    return f"{tag} {text}".strip()


def resize_frames(frames: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 `(F, H, W)` -> float32 `(F, resolution, resolution)` in `[-1, 1]` (the VAE's range)."""
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(torch.float32)[:, None] / 127.5 - 1.0
    if pixels.shape[-2:] != (resolution, resolution):
        pixels = F.interpolate(pixels, size=(resolution, resolution), mode="bilinear", antialias=True)
    return pixels[:, 0].clamp(-1.0, 1.0)


def to_uint8_frames(pixels: torch.Tensor) -> torch.Tensor:
    return ((pixels + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)


class ClipReader:
    """Reads clip frames from the clip set, keeping the last few clips in memory."""

    def __init__(self, clip_set: ClipSet, cache_size: int = 64) -> None:
        self.clip_set = clip_set
        self._read = lru_cache(maxsize=cache_size)(self._read_uncached)

    def _read_uncached(self, index: int) -> np.ndarray:
        record = self.clip_set.records[index]
        with np.load(self.clip_set.data_dir / record.path) as npz:
            frames = npz["frames"]
        if frames.dtype != np.uint8 or frames.ndim != 3:
            raise ValueError(
                f"clip {record.clip_id}: frames must be uint8 (F, H, W), got {frames.dtype} {frames.shape}"
            )
        return frames

    def frames(self, index: int) -> np.ndarray:
        return self._read(index)


def clip_windows(clip_set: ClipSet, num_frames: int) -> list[tuple[int, int]]:
    """Non-overlapping `num_frames` windows `(record index, start)` of every clip long enough (§4.1)."""
    windows = [
        (index, start)
        for index, record in enumerate(clip_set.records)
        for start in range(0, record.frames - num_frames + 1, num_frames)
    ]
    if not windows:
        raise ConfigError(f"data.num_frames: no clip has {num_frames} frames")
    return windows


class FrameDataset(Dataset):
    """Every frame of every clip window (VAE and stage 1); `window_index` names the window whose first frame
    is the frame's image prior, as in stage 2 (§3.3 "Image Prior")."""

    def __init__(self, clip_set: ClipSet, data: DataConfig, windows: Sequence[tuple[int, int]]) -> None:
        self.clip_set = clip_set
        self.data = data
        self.reader = ClipReader(clip_set)
        self.windows = list(windows)
        self.items = [(w, offset) for w in range(len(self.windows)) for offset in range(data.num_frames)]

    def __len__(self) -> int:
        return len(self.items)

    def prior_image(self, window: int) -> torch.Tensor:
        """The window's first frame at the training resolution, uint8 `(H, W)`."""
        index, start = self.windows[window]
        return to_uint8_frames(resize_frames(self.reader.frames(index)[[start]], self.data.resolution))[0]

    def __getitem__(self, item: int) -> dict[str, Any]:
        window, offset = self.items[item]
        index, start = self.windows[window]
        record = self.clip_set.records[index]
        pixels = resize_frames(self.reader.frames(index)[[start + offset]], self.data.resolution)
        return {
            "pixels": pixels,
            "prior": self.prior_image(window),
            "class_label": class_label(record, self.clip_set.class_names),
            "text": clip_text(record, self.data),
        }


class TextFrameDataset(Dataset):
    """(frame, text) pairs of the clips that have a text, for contrastive CLIP fine-tuning (§3.3).

    `transform` turns one uint8 frame `(H, W)` into the image tower's input.
    """

    def __init__(
        self, clip_set: ClipSet, data: DataConfig, transform: Callable[[np.ndarray], torch.Tensor]
    ) -> None:
        self.clip_set = clip_set
        self.data = data
        self.transform = transform
        self.reader = ClipReader(clip_set)
        self.items = [
            (i, f)
            for i, record in enumerate(clip_set.records)
            if clip_text(record, data)
            for f in range(record.frames)
        ]
        if not self.items:
            raise ConfigError("data: no clip in the split has a descriptive text to train on")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, item: int) -> dict[str, Any]:
        index, frame = self.items[item]
        image = self.transform(self.reader.frames(index)[frame])
        return {"image": image, "text": clip_text(self.clip_set.records[index], self.data)}


class ClipWindowDataset(Dataset):
    """`num_frames` windows of the clips with their motion fields from the ingest cache (stage 2)."""

    def __init__(self, clip_set: ClipSet, data: DataConfig, motion_dir: Path) -> None:
        self.clip_set = clip_set
        self.data = data
        self.reader = ClipReader(clip_set)
        self.motion_dir = motion_dir
        self.items = clip_windows(clip_set, data.num_frames)
        missing = [r.clip_id for r in clip_set.records if not (motion_dir / f"{r.clip_id}.npz").is_file()]
        if missing:
            raise ConfigError(
                f"motion_cache_dir: no motion field for {len(missing)} clips (first: {missing[0]}) "
                f"in {motion_dir};"
                " run `ctrlgenaug motion ...` first"
            )

    def __len__(self) -> int:
        return len(self.items)

    @property
    def windows(self) -> list[tuple[int, int]]:
        return self.items

    def prior_image(self, window: int) -> torch.Tensor:
        index, start = self.items[window]
        return to_uint8_frames(resize_frames(self.reader.frames(index)[[start]], self.data.resolution))[0]

    def motion_field(self, index: int, start: int) -> torch.Tensor:
        """The cached field of the window, rescaled to the training resolution; its first frame is zero."""
        record = self.clip_set.records[index]
        with np.load(self.motion_dir / f"{record.clip_id}.npz") as npz:
            field = npz["field"][start : start + self.data.num_frames].astype(np.float32)
        field = torch.from_numpy(field)
        field[0] = 0.0
        height, width = field.shape[-2:]
        size = self.data.resolution
        if (height, width) != (size, size):
            field = F.interpolate(field, size=(size, size), mode="bilinear", antialias=True)
            field[:, 0] *= size / width
            field[:, 1] *= size / height
        return field

    def __getitem__(self, item: int) -> dict[str, Any]:
        index, start = self.items[item]
        record = self.clip_set.records[index]
        frames = self.reader.frames(index)[start : start + self.data.num_frames]
        pixels = resize_frames(frames, self.data.resolution)
        return {
            "pixels": pixels,
            "prior": to_uint8_frames(pixels[0]),
            "motion_field": self.motion_field(index, start),
            "class_label": class_label(record, self.clip_set.class_names),
            "text": clip_text(record, self.data),
        }


class EpochPermutationSampler(Sampler[int]):
    """A fresh permutation each epoch, a function of (seed, epoch) only: a resumed run replays the order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(values[0], int):
            batch[key] = torch.tensor(values, dtype=torch.long)
        else:
            batch[key] = values
    return batch
