"""Quality metrics of generated clips, numpy in and out: fidelity (PSNR, SSIM), temporal coherence,
improved precision/recall, motion agreement and memorisation distances."""

from __future__ import annotations

import numpy as np
from monai.metrics import PSNRMetric, SSIMMetric
from scipy.spatial.distance import cdist

from classify.preprocess import check_clips
from filter.neighbours import (
    clip_distances,
    cross_patient_threshold,
    fit_standardiser,
    frame_features,
    kth_neighbour_radii,
    unit_images,
)

__all__ = [
    "clip_distances",
    "coverage",
    "cross_patient_threshold",
    "fit_standardiser",
    "frame_coherence",
    "frame_features",
    "motion_agreement",
    "precision_recall",
    "psnr",
    "ssim",
]


def _check_pair(reference: np.ndarray, test: np.ndarray) -> None:
    if np.shape(reference) != np.shape(test):
        raise ValueError(f"reference and test shapes differ: {np.shape(reference)} vs {np.shape(test)}")


def psnr(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """PSNR in dB (data range 255) of each image of uint8 `(..., H, W)` arrays, flattened to `(M,)`."""
    _check_pair(reference, test)
    metric = PSNRMetric(max_val=1.0, reduction="none")
    return metric(unit_images(test), unit_images(reference)).reshape(-1).double().numpy()


def ssim(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """SSIM (Wang et al. 2004: Gaussian window 11, sigma 1.5, data range 255) of each image, `(M,)`."""
    _check_pair(reference, test)
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, reduction="none")
    return metric(unit_images(test), unit_images(reference)).reshape(-1).double().numpy()


def frame_coherence(clips: np.ndarray) -> np.ndarray:
    """Per clip `(N,)`: mean Pearson correlation of consecutive frames of uint8 `(N, F, H, W)`.

    A pair with a constant frame has no correlation; it counts 1 when the two frames are equal, else 0.
    """
    clips = check_clips(clips).astype(np.float64)
    if clips.shape[1] < 2:
        raise ValueError(f"coherence needs clips of at least 2 frames, got {clips.shape[1]}")
    flat = clips.reshape(*clips.shape[:2], -1)
    centred = flat - flat.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1)
    a, b = centred[:, :-1], centred[:, 1:]
    denominator = norms[:, :-1] * norms[:, 1:]
    equal = np.all(flat[:, :-1] == flat[:, 1:], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pearson = np.where(denominator > 0, (a * b).sum(axis=-1) / denominator, equal.astype(np.float64))
    return pearson.mean(axis=1)


def precision_recall(
    real: np.ndarray,
    generated: np.ndarray,
    k: int = 3,
    real_groups: np.ndarray | None = None,
    generated_groups: np.ndarray | None = None,
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of feature sets `(M, D)`.

    Each sample's manifold ball has the radius of its k-th nearest neighbour in its own set; precision is
    the share of generated samples inside some real ball, recall the share of real samples inside some
    generated ball. With groups (e.g. the clip of each frame), neighbours are sought only among samples of
    other groups: frames of one clip are near-copies and would shrink every ball to that clip.
    """
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    real_radii = kth_neighbour_radii(real, k, real_groups)
    generated_radii = kth_neighbour_radii(generated, k, generated_groups)
    distances = cdist(generated, real)
    precision = float(np.mean((distances <= real_radii[None, :]).any(axis=1)))
    recall = float(np.mean((distances <= generated_radii[:, None]).any(axis=0)))
    return precision, recall


def coverage(
    real: np.ndarray, generated: np.ndarray, k: int = 3, real_groups: np.ndarray | None = None
) -> float:
    """Coverage (Naeem et al. 2020): the share of real samples whose real k-NN ball (as in
    `precision_recall`) holds a generated sample. Unlike recall it is not inflated by generated outliers,
    whose own balls are wide enough to hold every real sample."""
    real, generated = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    radii = kth_neighbour_radii(real, k, real_groups)
    return float(np.mean((cdist(real, generated) <= radii[:, None]).any(axis=1)))


def motion_agreement(field: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """End-point error (pixels) and cosine of a motion field against a reference, both `(F, 2, H, W)`,
    over frames 1.. (frame 0 has no motion). EPE: mean length of the per-pixel difference vector.
    Cosine: of the two fields flattened; 0 when either field is all zero."""
    _check_pair(field, reference)
    a, b = np.asarray(field, np.float64)[1:], np.asarray(reference, np.float64)[1:]
    epe = float(np.linalg.norm(a - b, axis=1).mean())
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    cosine = float((a * b).sum() / norms) if norms > 0 else 0.0
    return epe, cosine
