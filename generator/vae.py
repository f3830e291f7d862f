"""The 1-channel KL autoencoder of the latent diffusion model (paper §3.2) and clip <-> latent helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL


@dataclass(frozen=True)
class VAEConfig:
    """Shape of the KL VAE: the authors' 1-channel AutoencoderKL (blocks [128, 256, 512, 512], 4 latents)."""

    in_channels: int = 1
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    sample_size: int = 256
    scaling_factor: float = 0.18215

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if not self.block_out_channels:
            raise ValueError("block_out_channels must name at least one block")
        for width in self.block_out_channels:
            if width % self.norm_num_groups:
                raise ValueError(
                    f"block_out_channels entry {width} is not divisible by "
                    f"norm_num_groups={self.norm_num_groups}"
                )
        if self.scaling_factor <= 0:
            raise ValueError(f"scaling_factor must be positive, got {self.scaling_factor}")

    @property
    def downsampling_factor(self) -> int:
        """Pixels per latent along each side: each block after the first halves the resolution."""
        return 2 ** (len(self.block_out_channels) - 1)

    @classmethod
    def tiny(cls) -> VAEConfig:
        """Same depth (downsampling 8) with a few channels, for tests."""
        return cls(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=64)


def build_vae(cfg: VAEConfig) -> AutoencoderKL:
    """A randomly initialised diffusers `AutoencoderKL` of the given shape."""
    blocks = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=cfg.in_channels,
        out_channels=cfg.in_channels,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=cfg.sample_size,
        scaling_factor=cfg.scaling_factor,
    )


def clips_to_unit_range(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 clips `(N, F, H, W)` -> float32 in `[-1, 1]` (the range the VAE is trained on)."""
    tensor = torch.as_tensor(clips)
    if tensor.dtype != torch.uint8:
        raise TypeError(f"clips must be uint8 pixels, got dtype {tensor.dtype}")
    if tensor.ndim != 4:
        raise ValueError(f"clips must have shape (N, F, H, W), got {tuple(tensor.shape)}")
    return tensor.to(torch.float32) / 127.5 - 1.0


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """Float pixels in `[-1, 1]` -> uint8 `[0, 255]` (values outside the range are clipped)."""
    scaled = ((pixels.detach().to(torch.float32).clamp(-1.0, 1.0) + 1.0) * 127.5).round()
    return scaled.to(torch.uint8).cpu().numpy()


def _check_chunk(chunk_frames: int) -> None:
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")


@torch.no_grad()
def encode_clips(
    vae: AutoencoderKL, clips: np.ndarray | torch.Tensor, chunk_frames: int = 16
) -> torch.Tensor:
    """uint8 clips `(N, F, H, W)` -> posterior mean x scaling factor, `(N, F, C_latent, h, w)`.

    Frames go through the encoder `chunk_frames` at a time, which bounds the memory used.
    """
    _check_chunk(chunk_frames)
    if vae.config["in_channels"] != 1:
        raise ValueError(f"clips are grayscale; the VAE expects in_channels={vae.config['in_channels']}")
    pixels = clips_to_unit_range(clips)
    n, f, h, w = pixels.shape
    param = next(vae.parameters())
    frames = pixels.reshape(n * f, 1, h, w)
    latents = [
        vae.encode(frames[start : start + chunk_frames].to(param.device, param.dtype)).latent_dist.mean
        for start in range(0, n * f, chunk_frames)
    ]
    stacked = torch.cat(latents) * vae.config["scaling_factor"]
    return stacked.reshape(n, f, *stacked.shape[1:])


@torch.no_grad()
def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, chunk_frames: int = 16) -> torch.Tensor:
    """Scaled latents `(N, F, C_latent, h, w)` -> float pixels in `[-1, 1]`, `(N, F, H, W)`."""
    _check_chunk(chunk_frames)
    if latents.ndim != 5:
        raise ValueError(f"latents must have shape (N, F, C, h, w), got {tuple(latents.shape)}")
    n, f = latents.shape[:2]
    param = next(vae.parameters())
    flat = latents.reshape(n * f, *latents.shape[2:]) / vae.config["scaling_factor"]
    frames = [
        vae.decode(flat[start : start + chunk_frames].to(param.device, param.dtype)).sample
        for start in range(0, n * f, chunk_frames)
    ]
    pixels = torch.cat(frames).clamp(-1.0, 1.0)
    return pixels.reshape(n, f, *pixels.shape[-2:])


@torch.no_grad()
def latent_std(
    vae: AutoencoderKL, frames: torch.Tensor, generator: torch.Generator, chunk_frames: int = 64
) -> float:
    """Std of unscaled posterior samples of `frames` `(N, 1, H, W)` in [-1, 1] (what the LDM trains on)."""
    _check_chunk(chunk_frames)
    param = next(vae.parameters())
    samples = [
        vae.encode(frames[start : start + chunk_frames].to(param.device, param.dtype))
        .latent_dist.sample(generator=generator)
        .float()
        .cpu()
        for start in range(0, len(frames), chunk_frames)
    ]
    return float(torch.cat(samples).std())


def calibrated_scaling_factor(
    vae: AutoencoderKL, frames: torch.Tensor, seed: int = 0, chunk_frames: int = 64
) -> float:
    """1 / std of the posterior latents of the training frames: the LDM then sees unit-variance latents
    (§3.2; the convention of Stable Diffusion's 0.18215, computed for this VAE and these data)."""
    return 1.0 / latent_std(vae, frames, torch.Generator().manual_seed(seed), chunk_frames)


def scaled_latent_std(vae: AutoencoderKL, frames: torch.Tensor, seed: int = 0) -> float:
    """Std of `frames`' latents after the VAE's configured scaling factor (~1 when it fits the data)."""
    generator = torch.Generator().manual_seed(seed)
    return latent_std(vae, frames, generator) * float(vae.config["scaling_factor"])

