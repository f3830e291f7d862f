"""Scores of generated clips against the model's real TRAINING clips: the nearest real clip (memorisation,
a privacy check) and the share of frames on the real frames' k-NN manifold of the clip's class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from filter.neighbours import (
    NearestClip,
    fit_standardiser,
    frame_features,
    inside_balls,
    kth_neighbour_radii,
    spectrum_features,
)
from filter.settings import ReferenceSettings


def fit_clip(frames: np.ndarray, num_frames: int, height: int, width: int) -> np.ndarray:
    """The first `num_frames` frames resized (bilinear, antialiased) to `height`×`width`, uint8."""
    if frames.shape[0] < num_frames:
        raise ValueError(f"clip has {frames.shape[0]} frames, the model samples {num_frames}")
    clip = torch.from_numpy(np.ascontiguousarray(frames[:num_frames])).float()
    if clip.shape[-2:] != (height, width):
        flat = torch.nn.functional.interpolate(
            clip[:, None], size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
        clip = flat[:, 0]
    return clip.round().clamp(0, 255).to(torch.uint8).numpy()


BLANK_FRAME_STD = 8.0


@dataclass(frozen=True)
class RealReference:
    """Real training clips `(R, F, H, W)` uint8 at the model's size, their ids and class indices."""

    clip_ids: list[str]
    labels: np.ndarray
    clips: np.ndarray

    def __post_init__(self) -> None:
        if len(self.clip_ids) != len(self.clips) or np.shape(self.labels) != (len(self.clips),):
            raise ValueError("a real reference needs one clip id and one label per clip")
        if len(self.clips) < 2:
            raise ValueError("a real reference needs at least 2 training clips")


@dataclass(frozen=True)
class ReferenceScores:
    """Per generated clip: RMS pixel distance to the nearest real training clip, that clip's id, and the
    share of its frames inside the real k-NN manifold of its class."""

    real_distance: np.ndarray
    real_clip: np.ndarray
    manifold_share: np.ndarray

    @staticmethod
    def concatenate(parts: list[ReferenceScores]) -> ReferenceScores:
        return ReferenceScores(
            np.concatenate([p.real_distance for p in parts]),
            np.concatenate([p.real_clip for p in parts]),
            np.concatenate([p.manifold_share for p in parts]),
        )


@dataclass(frozen=True)
class _Manifold:
    centres: np.ndarray
    radii: np.ndarray


class ReferenceIndex:
    """The real reference prepared once per job: the nearest-clip index, standardised frame features and,
    per class, the k-NN balls of its frames (other-clip neighbours). Blank real frames (pixel standard
    deviation under `BLANK_FRAME_STD` grey levels: padding slices) carry no image and are left out of the
    manifold; a class with too few frames of other clips for k uses the balls of all real frames."""

    def __init__(self, reference: RealReference, settings: ReferenceSettings) -> None:
        self.reference = reference
        self.settings = settings
        self.nearest = NearestClip(reference.clips)
        frames = reference.clips.shape[1]
        features = self._features(reference.clips)
        self.mean, self.std = fit_standardiser(features, settings.feature_std_floor)
        features = (features - self.mean) / self.std
        content = reference.clips.reshape(len(features), -1).std(axis=1) >= BLANK_FRAME_STD
        features = features[content]
        frame_labels = np.repeat(reference.labels, frames)[content]
        frame_clip = np.repeat(np.arange(len(reference.clips)), frames)[content]
        self.everything = self._manifold(features, frame_clip)
        self.per_class: dict[int, _Manifold] = {}
        self.radius_floor: float | None = None
        for label in np.unique(reference.labels).tolist():
            rows = frame_labels == label
            if rows.sum() - np.bincount(frame_clip[rows]).max() >= settings.manifold_k:
                self.per_class[label] = self._manifold(features[rows], frame_clip[rows])
        if settings.manifold_radius_quantile is not None:
            self._floor_radii(settings.manifold_radius_quantile)

    def _floor_radii(self, quantile: float) -> None:
        """Raise every ball's radius to the `quantile` of the classes' k-NN radii: a class of one patient
        only shows that patient's spread, which a new patient's real frames exceed (docs/decisions.md)."""
        pooled = [m.radii for m in self.per_class.values()] or [self.everything.radii]
        floor = float(np.quantile(np.concatenate(pooled), quantile))
        self.radius_floor = floor
        self.everything = _Manifold(self.everything.centres, np.maximum(self.everything.radii, floor))
        self.per_class = {
            label: _Manifold(m.centres, np.maximum(m.radii, floor)) for label, m in self.per_class.items()
        }

    def _features(self, clips: np.ndarray) -> np.ndarray:
        if self.settings.manifold_features == "spectrum":
            return spectrum_features(clips, self.settings.spectrum_bands)
        return frame_features(clips, self.settings.feature_size)

    def _manifold(self, features: np.ndarray, clip: np.ndarray) -> _Manifold:
        return _Manifold(features, kth_neighbour_radii(features, self.settings.manifold_k, clip))

    def score(self, clips: np.ndarray, labels: np.ndarray) -> ReferenceScores:
        """Scores of uint8 clips `(N, F, H, W)` (the model's size) of class indices `labels` `(N,)`."""
        distance, nearest = self.nearest(clips)
        frames = clips.shape[1]
        features = (self._features(clips) - self.mean) / self.std
        share = np.empty(len(clips))
        for label in np.unique(labels).tolist():
            members = np.flatnonzero(labels == label)
            rows = (members[:, None] * frames + np.arange(frames)).reshape(-1)
            manifold = self.per_class.get(label, self.everything)
            inside = inside_balls(features[rows], manifold.centres, manifold.radii)
            share[members] = inside.reshape(len(members), frames).mean(axis=1)
        ids = np.asarray(self.reference.clip_ids, dtype=str)[nearest]
        return ReferenceScores(real_distance=distance, real_clip=ids, manifold_share=share)
