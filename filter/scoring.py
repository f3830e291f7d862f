"""Model-bound filter inputs: each clip's semantic loss (classifier) and VAE latents (paper §3.5)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from diffusers.models import AutoencoderKL
from torch import nn

from classify.preprocess import ClipNormalization, clips_to_tensor
from filter.semantic import classifier_losses
from generator.vae import encode_clips

LatentEncoder = Callable[[np.ndarray], torch.Tensor | np.ndarray]
ClassifierInput = Callable[[np.ndarray], torch.Tensor]


def checkpoint_classifier_input(meta: dict[str, Any]) -> ClassifierInput:
    """The input transform of a `classify.checkpoint.load_classifier` checkpoint (its normalization, size)."""
    normalization = ClipNormalization(**meta["normalization"])
    return partial(clips_to_tensor, normalization=normalization, size=meta.get("size"))


def score_clips(
    clips: np.ndarray,
    labels: np.ndarray,
    classifier: nn.Module,
    classifier_input: ClassifierInput,
    encoder: AutoencoderKL | LatentEncoder,
    batch_size: int = 8,
    chunk_frames: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: cross-entropy against its bank's class, and latents for VAE-Seq and Θ.

    `clips` uint8 (N, F, H, W); `labels` (N,) class index of each clip's bank. `classifier_input` maps a
    uint8 batch to the classifier's (B, 1, F, H, W) float input (see `checkpoint_classifier_input`).
    `encoder` is the generator's VAE (latents from `generator.vae.encode_clips`: posterior mean x scaling,
    pixels in [-1, 1]) or any callable with that contract, e.g. `CtrlGenAugPipeline.encode_latents`.
    Returns `loss` float64 (N,) and `latents` float32 (N, F, C, h, w), `batch_size` clips at a time.
    """
    clips = np.asarray(clips)
    labels = np.asarray(labels)
    if clips.dtype != np.uint8 or clips.ndim != 4:
        raise ValueError(f"'clips' must be uint8 (N, F, H, W), got {clips.dtype} {clips.shape}")
    if labels.shape != (clips.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"'labels' must be integer class indices of shape (N,), got {labels.dtype} {labels.shape}"
        )
    encode: LatentEncoder
    if isinstance(encoder, AutoencoderKL):
        encode = partial(encode_clips, encoder, chunk_frames=chunk_frames)
    else:
        encode = encoder
    losses, latents = [], []
    for start in range(0, clips.shape[0], batch_size):
        batch = clips[start : start + batch_size]
        target = torch.from_numpy(labels[start : start + batch_size].astype(np.int64))
        losses.append(classifier_losses(classifier, classifier_input(batch), target, batch_size))
        encoded = encode(batch)
        latents.append(encoded.float().cpu().numpy() if isinstance(encoded, torch.Tensor) else encoded)
    return np.concatenate(losses), np.concatenate(latents).astype(np.float32, copy=False)
