"""Stage 1 of Algorithm 1: class-semantics misalignment filtering (paper §3.5, Alg. 1 lines 2-17)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def group_thresholds(group: np.ndarray, loss: np.ndarray, alpha: float) -> np.ndarray:
    """Per clip, alpha times the mean loss of its group (L_c of Alg. 1 line 7, scaled by alpha)."""
    _, inverse = np.unique(group, return_inverse=True)
    sums = np.bincount(inverse, weights=loss)
    counts = np.bincount(inverse)
    return alpha * (sums / counts)[inverse]


def semantic_keep(loss: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Keep a clip if its loss <= its group threshold (Alg. 1 line 10)."""
    # a loss equal to the mean up to round-off counts as equal (a group of equal losses keeps all)
    return (loss <= thresholds) | np.isclose(loss, thresholds, rtol=1e-12, atol=0.0)


@torch.inference_mode()
def classifier_losses(
    classifier: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 8
) -> np.ndarray:
    """Cross-entropy of each clip against its bank's class (Alg. 1 line 6).

    `inputs` (N, 1, F, H, W) float in the classifier's input range, `labels` (N,) int class indices.
    Runs on the classifier's device, `batch_size` clips at a time; returns float64 (N,).
    """
    if inputs.ndim != 5 or inputs.shape[1] != 1:
        raise ValueError(f"'inputs' must have shape (N, 1, F, H, W), got {tuple(inputs.shape)}")
    if labels.shape != (inputs.shape[0],):
        raise ValueError(f"'labels' must have shape ({inputs.shape[0]},), got {tuple(labels.shape)}")
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    losses = []
    for start in range(0, inputs.shape[0], batch_size):
        batch = inputs[start : start + batch_size].to(device)
        target = labels[start : start + batch_size].to(device=device, dtype=torch.long)
        logits = classifier(batch)
        if int(target.min()) < 0 or int(target.max()) >= logits.shape[1]:
            classes = logits.shape[1]
            raise ValueError(f"'labels' must be class indices in [0, {classes}), got {target.tolist()}")
        losses.append(F.cross_entropy(logits.float(), target, reduction="none").cpu())
    classifier.train(was_training)
    return torch.cat(losses).double().numpy()
