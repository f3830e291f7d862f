"""Hand-built latents with known VAE-Seq and Θ, for planting clips the filter must drop or keep."""

from __future__ import annotations

import numpy as np

FRAMES = 6
LATENT_SHAPE = (4, 8, 8)
DIM = int(np.prod(LATENT_SHAPE))


def orthonormal(rng: np.random.Generator, count: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((DIM, count)))
    return q.T


def smooth_clip(rng: np.random.Generator, consecutive_cosine: float) -> np.ndarray:
    """(FRAMES, DIM) unit frames whose consecutive cosines all equal `consecutive_cosine`."""
    shared, *own = orthonormal(rng, FRAMES + 1)
    c = consecutive_cosine
    return np.sqrt(c) * shared + np.sqrt(1 - c) * np.stack(own)


def normal_clip(rng: np.random.Generator, index: int) -> np.ndarray:
    """A gentle-dynamics clip: VAE-Seq in one of two middle bands, [0.5, 0.6] or [0.75, 0.85]."""
    low = 0.5 if index % 2 == 0 else 0.75
    return smooth_clip(rng, rng.uniform(low, low + 0.1))


def noise_clip(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((FRAMES, DIM))


def static_clip(rng: np.random.Generator) -> np.ndarray:
    return np.repeat(rng.standard_normal((1, DIM)), FRAMES, axis=0)


def near_copy(rng: np.random.Generator, clip: np.ndarray, theta: float) -> np.ndarray:
    """A clip whose every frame has cosine `theta` with the same frame of `clip` (so Θ = theta)."""
    out = np.empty_like(clip)
    for f, frame in enumerate(clip):
        unit = frame / np.linalg.norm(frame)
        other = rng.standard_normal(DIM)
        other -= (other @ unit) * unit
        other /= np.linalg.norm(other)
        out[f] = (theta * unit + np.sqrt(1 - theta**2) * other) * np.linalg.norm(frame)
    return out


def as_latents(clips: list[np.ndarray]) -> np.ndarray:
    return np.stack(clips).reshape(len(clips), FRAMES, *LATENT_SHAPE).astype(np.float32)


def band_anchors(rng: np.random.Generator) -> list[np.ndarray]:
    """A noise clip and a static clip: they make the lowest and highest K-means clusters."""
    return [noise_clip(rng), static_clip(rng)]
