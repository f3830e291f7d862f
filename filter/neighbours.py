"""The feature space and neighbour code shared by the filter's reference checks and quality/: frame
features, their standardiser, k-NN manifold radii with other-clip neighbours, and clip distances."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from classify.preprocess import check_clips, resize_frames


def unit_images(images: np.ndarray) -> torch.Tensor:
    """uint8 `(..., H, W)` -> float `(M, 1, H, W)` in [0, 1]."""
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.ndim < 2:
        raise ValueError(f"images must be uint8 (..., H, W), got {array.dtype} {array.shape}")
    return torch.from_numpy(array.reshape(-1, 1, *array.shape[-2:])).float().div(255.0)


def frame_features(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 frames `(..., H, W)` -> `(M, size*size)` float64: resized (bilinear, antialiased) to
    `size`×`size`, values in [0, 1], flattened."""
    unit = unit_images(frames)
    return resize_frames(unit, size).reshape(unit.shape[0], -1).double().numpy()


SPECTRUM_FLOOR = 1e-8


def spectrum_features(frames: np.ndarray, bands: int) -> np.ndarray:
    """uint8 frames `(..., H, W)` -> `(M, bands + 1)` float64: the radially averaged power spectrum of each
    frame (values in [0, 1], its mean removed) in `bands` equal rings from 0 to the corner frequency, as log10
    shares of the frame's power, and log10 of the rings' mean power. Image statistics, not content: real
    frames of a new patient keep their modality's spectrum, noise is flat and a constant frame has none."""
    unit = unit_images(frames)[:, 0].double().numpy()
    unit = unit - unit.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.rfft2(unit)) ** 2
    height, width = unit.shape[1:]
    radius = np.hypot(np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :])
    ring = np.minimum((radius / radius.max() * bands).astype(int), bands - 1).reshape(-1)
    flat = power.reshape(len(power), -1)
    per_ring = np.stack([flat[:, ring == b].mean(axis=1) for b in range(bands)], axis=1)
    total = per_ring.sum(axis=1, keepdims=True)
    shares = per_ring / np.maximum(total, SPECTRUM_FLOOR)
    return np.log10(np.concatenate([shares, total / bands], axis=1) + SPECTRUM_FLOOR)


def fit_standardiser(reference: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation of `reference` `(M, D)`, the deviation floored at
    `floor` so dimensions that never vary in real data (black borders) do not dominate distances."""
    reference = np.asarray(reference, np.float64)
    return reference.mean(axis=0), np.maximum(reference.std(axis=0), floor)


def kth_neighbour_radii(features: np.ndarray, k: int, groups: np.ndarray | None) -> np.ndarray:
    """Each sample's distance to its k-th nearest sample of another group (e.g. another clip: frames of
    one clip are near-copies and would shrink every ball to that clip), `(M,)`."""
    groups = np.arange(len(features)) if groups is None else np.asarray(groups)
    if groups.shape != (len(features),):
        raise ValueError(f"groups: expected shape ({len(features)},), got {groups.shape}")
    distances = cdist(features, features)
    distances[groups[:, None] == groups[None, :]] = np.inf
    radii = np.partition(distances, k - 1, axis=1)[:, k - 1]
    if np.isinf(radii).any():
        raise ValueError(f"k-NN radii with k={k}: a sample has fewer than {k} neighbours outside its group")
    return radii


def inside_balls(samples: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """`(M,)` bool: whether each sample lies in some ball (centre `centres[j]`, radius `radii[j]`) —
    the membership of improved precision (Kynkäänniemi et al. 2019)."""
    return (cdist(samples, centres) <= radii[None, :]).any(axis=1)


def _flat_unit(clips: np.ndarray) -> np.ndarray:
    clips = check_clips(clips)
    return clips.reshape(len(clips), -1).astype(np.float64) / 255.0


def clip_distances(clips_a: np.ndarray, clips_b: np.ndarray) -> np.ndarray:
    """Root-mean-square pixel difference (in [0, 1] units) between every clip of `(N, F, H, W)` and
    every clip of `(M, F, H, W)` (uint8, same shape), `(N, M)`."""
    a, b = _flat_unit(clips_a), _flat_unit(clips_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"clip shapes differ: {clips_a.shape[1:]} vs {clips_b.shape[1:]}")
    return cdist(a, b) / np.sqrt(a.shape[1])


class NearestClip:
    """The nearest clip of a fixed reference set `(M, F, H, W)` (uint8) by `clip_distances`, fitted once."""

    def __init__(self, reference: np.ndarray) -> None:
        flat = _flat_unit(reference)
        self.shape = reference.shape[1:]
        self.scale = np.sqrt(flat.shape[1])
        self.index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(flat)

    def __call__(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per clip of `(N, F, H, W)`: the distance to its nearest reference clip and that clip's index."""
        if clips.shape[1:] != self.shape:
            raise ValueError(f"clip shapes differ: {clips.shape[1:]} vs {self.shape}")
        distance, index = self.index.kneighbors(_flat_unit(clips))
        return distance[:, 0] / self.scale, index[:, 0]


def cross_patient_threshold(clips: np.ndarray, patients: list[str], quantile: float) -> float:
    """The `quantile` of the distances from each real clip to its nearest real clip of another patient."""
    if len(set(patients)) < 2:
        raise ValueError("memorisation needs real clips of at least two patients")
    distances = clip_distances(clips, clips)
    owner = np.asarray(patients)
    distances[owner[:, None] == owner[None, :]] = np.inf
    return float(np.quantile(distances.min(axis=1), quantile))
