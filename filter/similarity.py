"""Stage 3 of Algorithm 1: inter-clip similarity Θ and the greedy de-duplication pass (paper §3.5)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def unit_frames(latents: np.ndarray) -> torch.Tensor:
    """(n, F, ...) latents -> (n, F, D) float32, each frame's flattened latent scaled to unit norm."""
    return F.normalize(torch.from_numpy(np.ascontiguousarray(latents)).float().flatten(2), dim=-1)


def theta_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Θ between every clip of `a` (n, F, D) and of `b` (m, F, D): mean over frame index of the cosine."""
    return torch.einsum("ifd,jfd->ij", a, b) / a.shape[1]


def greedy_dedupe(
    latents: np.ndarray, order: np.ndarray, threshold: float, block_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Visit clips `latents[order]` in order; keep one if its Θ to every clip kept before is < threshold.

    Alg. 1 lines 33-41. Returns (kept, nearest), aligned with `order`: `nearest` is the largest Θ to
    a clip kept before it (NaN when none was). Θ is one matrix product per block of `block_size`
    clips plus one against the clips kept in earlier blocks.
    """
    n = order.shape[0]
    kept = np.zeros(n, dtype=bool)
    nearest = np.full(n, np.nan)
    kept_units: list[torch.Tensor] = []
    for start in range(0, n, block_size):
        units = unit_frames(latents[order[start : start + block_size]])
        within = theta_matrix(units, units).double().numpy()
        best = np.full(units.shape[0], -np.inf)
        if kept_units:
            best = theta_matrix(units, torch.cat(kept_units)).amax(dim=1).double().numpy()
        block_kept = np.zeros(units.shape[0], dtype=bool)
        # sequential by definition: whether a clip is kept depends on which earlier clips were kept
        for i in range(units.shape[0]):
            if best[i] < threshold:
                block_kept[i] = True
                best[i + 1 :] = np.maximum(best[i + 1 :], within[i, i + 1 :])
        block_best = best.copy()
        block_best[np.isneginf(block_best)] = np.nan
        nearest[start : start + units.shape[0]] = block_best
        kept[start : start + units.shape[0]] = block_kept
        kept_units.append(units[torch.from_numpy(block_kept)])
    return kept, nearest
