"""Datasets over uint8 clip arrays for classifier training and testing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from classify.augment import augment_clip
from classify.preprocess import ClipNormalization, check_clips, normalize, resize_frames


@dataclass(frozen=True)
class ClipSet:
    """uint8 clips `(N, F, H, W)` with their class indices `(N,)`."""

    clips: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        check_clips(self.clips)
        if np.asarray(self.labels).shape != (self.clips.shape[0],):
            raise ValueError(f"labels: expected shape ({self.clips.shape[0]},), got {np.shape(self.labels)}")

    def __len__(self) -> int:
        return self.clips.shape[0]

    def subset(self, indices: np.ndarray) -> ClipSet:
        return ClipSet(self.clips[indices], np.asarray(self.labels)[indices])

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=num_classes).tolist()


class ClipDataset(Dataset):
    """Item i: (float `(1, F, size, size)` normalised clip, int label). `transform` (see
    `classify.augment.build_clip_transform`) runs on the [0, 1] clip before normalisation."""

    def __init__(
        self,
        clips: np.ndarray,
        labels: np.ndarray,
        size: int,
        normalization: ClipNormalization = ClipNormalization(),
        transform: v2.Transform | None = None,
    ) -> None:
        self.clips = check_clips(clips)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.shape != (self.clips.shape[0],):
            raise ValueError(f"labels: expected shape ({self.clips.shape[0]},), got {self.labels.shape}")
        self.size = size
        self.normalization = normalization
        self.transform = transform

    def __len__(self) -> int:
        return self.clips.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        unit = torch.from_numpy(self.clips[index]).float().div_(255.0).unsqueeze(0)
        unit = augment_clip(self.transform, resize_frames(unit, self.size))
        return normalize(unit, self.normalization), int(self.labels[index])
