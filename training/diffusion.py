"""The denoising objective of Eq. (1), the noise schedule and the VAE/text helpers both UNet stages share."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from training.config import NoiseScheduleConfig


def build_noise_scheduler(config: NoiseScheduleConfig) -> object:
    """DDPM forward process: T = 1000, scaled-linear betas 0.00085 -> 0.012, epsilon prediction (§3.2)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        clip_sample=False,
    )


def noised(
    scheduler: object, latents: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z_t, epsilon, t): noise and timesteps drawn on the CPU from the step's generator, one t per sample."""
    noise = torch.randn(latents.shape, generator=generator, dtype=torch.float32).to(
        latents.device, latents.dtype
    )
    steps = scheduler.config.num_train_timesteps  # type: ignore[attr-defined]
    timesteps = torch.randint(0, steps, (latents.shape[0],), generator=generator).to(latents.device)
    return scheduler.add_noise(latents, noise, timesteps), noise, timesteps  # type: ignore[attr-defined]


def epsilon_loss(predicted: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Eq. (1): || epsilon - epsilon_theta(z_t, c, t) ||^2, averaged."""
    return F.mse_loss(predicted.float(), noise.float())


def vae_latents(vae: torch.nn.Module, pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Pixels `(N, 1, H, W)` in [-1, 1] -> scaled latent samples `(N, 4, h, w)` (the LDM's z_0)."""
    posterior = vae.encode(pixels.to(vae.dtype)).latent_dist  # type: ignore[operator]
    return posterior.sample(generator=generator) * vae.config.scaling_factor  # type: ignore[attr-defined]


def text_token_table(
    conditioner: torch.nn.Module, texts: Sequence[str], chunk: int = 64
) -> dict[str, torch.Tensor]:
    """Per-token CLIP states of every distinct text (the frozen text encoder runs once per text)."""
    distinct = sorted(set(texts))
    table: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for start in range(0, len(distinct), chunk):
            part = distinct[start : start + chunk]
            states = conditioner(conditioner.tokenize(part)).float().cpu()  # type: ignore[operator]
            table.update(zip(part, states, strict=True))
    return table
