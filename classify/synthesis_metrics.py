"""Synthesis metrics of §4.2: dataset-level VAE-Seq, Dynamic Smoothness, FVD."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from torch import nn

from classify.preprocess import ClipNormalization, check_clips, clips_to_tensor, resize_frames

Interpolator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def vae_seq_per_clip(latents: np.ndarray) -> np.ndarray:
    """§3.5 VAE-Seq: mean cosine similarity between the VAE latents of consecutive frames,
    latents `(N, F, ...)` → `(N,)`."""
    latents = np.asarray(latents)
    if latents.ndim < 3 or latents.shape[1] < 2:
        raise ValueError(f"latents: expected (N, F>=2, ...), got {latents.shape}")
    flat = torch.from_numpy(latents.reshape(latents.shape[0], latents.shape[1], -1)).double()
    return torch.nn.functional.cosine_similarity(flat[:, 1:], flat[:, :-1], dim=-1).mean(dim=1).numpy()


def dataset_vae_seq(values_or_latents: np.ndarray) -> dict[str, float | int]:
    """Dataset VAE-Seq: the mean of per-clip VAE-Seq values `(N,)` (as filter/ computes them),
    or of latents `(N, F, ...)` reduced per clip first."""
    values = np.asarray(values_or_latents, dtype=np.float64)
    if values.ndim != 1:
        values = vae_seq_per_clip(values)
    if values.size == 0:
        raise ValueError("vae_seq: no clips")
    return {"mean": float(values.mean()), "std": float(values.std()), "clips": int(values.size)}


class TorchScriptInterpolator:
    """A frame-interpolation network saved with TorchScript: `forward(frame0, frame1)` on
    `(B, channels, H, W)` in [0, 1] returns the middle frame. Grey frames are repeated to
    `channels` and the output averaged back to one channel."""

    def __init__(self, path: str | Path, channels: int = 3, device: str = "cpu") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"interpolator: no TorchScript file at {path}")
        self.module = torch.jit.load(str(path), map_location=device).eval()
        self.channels = channels
        self.device = device

    @torch.no_grad()
    def __call__(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        expand = (1, self.channels, 1, 1)
        middle = self.module(frame0.repeat(expand).to(self.device), frame1.repeat(expand).to(self.device))
        return middle.float().mean(dim=1, keepdim=True).clamp(0, 1).cpu()


@torch.no_grad()
def dynamic_smoothness(clips: np.ndarray, interpolator: Interpolator) -> float:
    """§4.2 Dynamic Smoothness (VBench's motion smoothness): drop the odd frames, rebuild each
    from its two even neighbours with the interpolation model, and score 1 − MAE / 255."""
    clips = check_clips(clips)
    if clips.shape[1] < 3:
        raise ValueError(f"dynamic smoothness needs clips of at least 3 frames, got {clips.shape[1]}")
    errors = []
    for clip in clips:
        frames = torch.from_numpy(clip).float().div(255.0).unsqueeze(1)
        before, after = frames[0:-2:2], frames[2::2]
        target = frames[1:-1:2]
        middle = interpolator(before, after)
        errors.append(float((middle * 255.0 - target * 255.0).abs().mean()))
    return float(1.0 - np.mean(errors) / 255.0)


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets `(N, D)` (FVD, FID)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(
            f"frechet_distance: expected two (N>=2, D) arrays of one D, got {a.shape}, {b.shape}"
        )
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    distance = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * np.real(covmean))
    return float(max(distance, 0.0))


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ValueError("feature extractor: the classifier has no linear head")
    return linears[-1]


@torch.no_grad()
def classifier_features(
    model: nn.Module,
    clips: np.ndarray,
    normalization: ClipNormalization = ClipNormalization(),
    size: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
) -> np.ndarray:
    """Penultimate features `(N, D)` of a registered classifier: the input of its last linear
    layer, averaged over any remaining positions."""
    captured: list[torch.Tensor] = []
    hook = _last_linear(model).register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    model.to(device).eval()
    try:
        for start in range(0, clips.shape[0], batch_size):
            model(clips_to_tensor(clips[start : start + batch_size], normalization, size).to(device))
    finally:
        hook.remove()
    return torch.cat([f.reshape(f.shape[0], -1, f.shape[-1]).mean(dim=1) for f in captured]).cpu().numpy()


@torch.no_grad()
def i3d_torchscript_features(
    path: str | Path, clips: np.ndarray, size: int = 224, batch_size: int = 8, device: str = "cpu"
) -> np.ndarray:
    """Features of the Kinetics-400 I3D used for FVD, saved with TorchScript as in StyleGAN-V
    (`detector(video (B, 3, F, H, W) in [-1, 1], rescale=False, resize=False,
    return_features=True)`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fvd i3d: no TorchScript file at {path}")
    detector = torch.jit.load(str(path), map_location=device).eval()
    features = []
    for start in range(0, check_clips(clips).shape[0], batch_size):
        video = torch.from_numpy(clips[start : start + batch_size]).float().div(127.5).sub(1.0)
        video = resize_frames(video, size).unsqueeze(1).repeat(1, 3, 1, 1, 1).to(device)
        features.append(detector(video, rescale=False, resize=False, return_features=True).float().cpu())
    return torch.cat(features).numpy()
