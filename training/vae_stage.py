"""`train vae`: the 1-channel KL autoencoder, loss L1 + KL (1e-6) (+ LPIPS when local weights are given)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.config import ConfigError, VAEStageConfig, build_section
from training.data import FrameDataset, clip_windows, load_clip_set
from training.trainer import Batch, StageRun

VAE_COMPONENT = "vae"


def load_perceptual_loss(path: Path, net: str = "alex") -> nn.Module:
    """LPIPS (lpips package) with every weight (backbone + linear heads) from one local state-dict file.

    lpips would download its ImageNet backbone; here nothing is fetched: the file must hold the full state.
    """
    import lpips

    if not path.is_file():
        raise ConfigError(f"perceptual_weights_path: {path} is not a file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            f"perceptual_weights_path: {path} is not a full LPIPS-{net} state dict: {exc}"
        ) from exc
    return model.requires_grad_(False).eval()


def augment_frames(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, gamma, contrast/brightness and inversion of frames `(B, 1, H, W)` in [-1, 1].

    An autoencoder should reproduce any image, not only the intensity profiles of a few training patients:
    without this the demo VAE reconstructed held-out MR patients (brighter tissue) at ~11 dB PSNR.
    Draws come from the step's CPU generator, so a resumed run replays them.
    """
    batch = pixels.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        draw = torch.rand(batch, 1, 1, 1, generator=generator) * (high - low) + low
        return draw.to(pixels.device, pixels.dtype)

    def coin(p: float) -> torch.Tensor:
        return (torch.rand(batch, 1, 1, 1, generator=generator) < p).to(pixels.device)

    unit = (pixels + 1) / 2
    unit = torch.where(coin(0.5), unit.flip(-1), unit)
    unit = unit.clamp(0, 1) ** torch.exp(uniform(-0.7, 0.7))
    unit = torch.where(coin(0.25), 1 - unit, unit)
    unit = (unit * uniform(0.7, 1.3) + uniform(-0.2, 0.2)).clamp(0, 1)
    return unit * 2 - 1


class VAEObjective(nn.Module):
    """Reconstruction L1 + KL weight x KL(q(z|x) || N(0, I)) (+ LPIPS), the authors' VAE loss."""

    def __init__(
        self,
        vae: nn.Module,
        kl_weight: float,
        perceptual: nn.Module | None,
        perceptual_weight: float,
        augment: bool = False,
    ):
        super().__init__()
        self.vae = vae
        self.augment = augment
        self.kl_weight = kl_weight
        self.perceptual_weight = perceptual_weight
        self._perceptual = (
            [perceptual] if perceptual is not None else []
        )  # frozen, kept out of the checkpoint

    def forward(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        pixels = batch["pixels"]
        if self.augment:
            pixels = augment_frames(pixels, generator)
        posterior = self.vae.encode(pixels).latent_dist
        reconstruction = self.vae.decode(posterior.sample(generator=generator)).sample
        l1 = (reconstruction - pixels).abs().mean()
        kl = posterior.kl().mean()
        loss = l1 + self.kl_weight * kl
        outputs = {"l1": l1.detach(), "kl": kl.detach()}
        if self._perceptual:
            perceptual = self._perceptual[0](
                reconstruction.repeat(1, 3, 1, 1), pixels.repeat(1, 3, 1, 1)
            ).mean()
            loss = loss + self.perceptual_weight * perceptual
            outputs["lpips"] = perceptual.detach()
        return {"loss": loss, **outputs}


def is_grayscale_vae(folder: Path) -> bool:
    """True for a 1-channel diffusers VAE folder (this project's), False for an RGB Stable Diffusion one."""
    config_file = folder / "config.json"
    return config_file.is_file() and json.loads(config_file.read_text()).get("in_channels") == 1


def build_vae_for_stage(config: VAEStageConfig) -> Any:
    from generator.vae import VAEConfig, build_vae

    if config.init_from is None:
        if config.trainable == "decoder":
            raise ConfigError("trainable: 'decoder' fine-tunes a trained VAE; set init_from to its folder")
        return build_vae(build_section(VAEConfig, config.vae, "vae"))
    if not config.init_from.exists():
        raise ConfigError(f"init_from: {config.init_from} does not exist")
    if is_grayscale_vae(config.init_from):
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(config.init_from, local_files_only=True)
    else:
        from generator.sd_loading import load_sd_vae

        vae = load_sd_vae(config.init_from, build_section(VAEConfig, config.vae, "vae"))
    if config.trainable == "decoder":
        for part in (vae.encoder, vae.quant_conv):
            part.requires_grad_(False)
    return vae


def training_frames(dataset: FrameDataset) -> torch.Tensor:
    """Every training frame, `(N, 1, H, W)` in [-1, 1]."""
    return torch.stack([dataset[item]["pixels"] for item in range(len(dataset))])


def data_scaling_factor(vae: nn.Module, dataset: FrameDataset, seed: int) -> float:
    """The latent scaling factor for these training frames (1 / std, diffusers' convention)."""
    from generator.vae import calibrated_scaling_factor

    was_training = vae.training
    vae.eval()
    factor = calibrated_scaling_factor(vae, training_frames(dataset), seed=seed)
    vae.train(was_training)
    return factor


def build_vae_stage(config: VAEStageConfig) -> StageRun:
    clip_set = load_clip_set(config.data)
    dataset = FrameDataset(clip_set, config.data, clip_windows(clip_set, config.data.num_frames))
    vae = build_vae_for_stage(config)
    if config.gradient_checkpointing:
        vae.enable_gradient_checkpointing()
    perceptual = None
    if config.perceptual_weights_path is not None:
        perceptual = load_perceptual_loss(config.perceptual_weights_path)
    objective = VAEObjective(vae, config.kl_weight, perceptual, config.perceptual_weight, config.augment)

    def export(model: nn.Module, directory: Path) -> None:
        if config.trainable == "all":  # a frozen encoder keeps the factor it was calibrated with
            model.vae.register_to_config(scaling_factor=data_scaling_factor(model.vae, dataset, config.seed))
        model.vae.save_pretrained(directory / VAE_COMPONENT, safe_serialization=True)

    return StageRun(
        model=objective,
        dataset=dataset,
        export=export,
        manifest_checksum=clip_set.manifest_checksum,
        frozen=[perceptual] if perceptual is not None else [],
        summary={
            "perceptual_loss": perceptual is not None,
            "frames": len(dataset),
            "trainable": config.trainable,
            "init_from": str(config.init_from) if config.init_from else None,
        },
    )
