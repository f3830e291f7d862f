"""`train image` (stage 1, §3.2): the 2D conditional LDM with class, text and image prior; whole UNet and the
image-prior projector trainable; joint multi-condition dropout (§4.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.conditioning import (
    PROJECTOR_COMPONENT,
    UNET_COMPONENT,
    FrozenConditioning,
    TrainingConditions,
    load_frozen_conditioning,
    warm_image_prior_cache,
)
from training.config import ConfigError, ImageStageConfig, build_section
from training.data import FrameDataset, clip_text, clip_windows, load_clip_set
from training.diffusion import build_noise_scheduler, epsilon_loss, noised, vae_latents
from training.trainer import Batch, StageRun


class ImageDiffusionObjective(nn.Module):
    """Eq. (1) on single frames with the stage-1 UNet."""

    def __init__(self, unet: nn.Module, conditions: TrainingConditions, noise_config: Any) -> None:
        super().__init__()
        self.unet = unet
        self.conditions = conditions
        self.scheduler = build_noise_scheduler(noise_config)

    def forward(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        cond = self.conditions(batch, generator)
        noisy, noise, timesteps = noised(self.scheduler, batch["latents"], generator)
        predicted = self.unet(
            noisy,
            timesteps,
            text_tokens=cond.text_tokens,
            class_labels=cond.class_labels,
            image_prior_tokens=cond.image_prior_tokens,
            **self.extra_unet_inputs(cond),
        )
        return {"loss": epsilon_loss(predicted, noise)}

    def extra_unet_inputs(self, cond: Any) -> dict[str, Any]:
        """Inputs only some UNets take (stage 2 adds the motion condition)."""
        return {}


def batch_conditioning(frozen: FrozenConditioning) -> Any:
    """The no-grad part of a step: frames -> VAE latents, texts -> token states, priors -> embeddings."""

    def prepare(batch: Batch, generator: torch.Generator) -> Batch:
        pixels = batch["pixels"]
        shape = pixels.shape  # (B, 1, H, W) frames or (B, F, H, W) windows
        latents = vae_latents(frozen.vae, pixels.reshape(-1, 1, *shape[-2:]), generator)
        if shape[1] > 1:
            latents = latents.reshape(shape[0], shape[1], *latents.shape[1:]).transpose(1, 2)
        device = pixels.device
        text_tokens = torch.stack([frozen.text_tokens[text] for text in batch["text"]]).to(device)
        embeddings = frozen.image_encoder(list(batch["prior"].cpu().numpy())).to(device)
        return {**batch, "latents": latents, "text_tokens": text_tokens, "prior_embeddings": embeddings}

    return prepare


def image_unet_config(config: ImageStageConfig, frozen: FrozenConditioning, num_classes: int) -> Any:
    from generator.config import ImageUNetConfig

    values = dict(config.unet)
    derived = {
        "num_classes": num_classes,
        "cross_attention_dim": frozen.cross_attention_dim,
        "sample_size": config.data.resolution // frozen.latent_downsampling,
        "in_channels": frozen.vae.config.latent_channels,
        "out_channels": frozen.vae.config.latent_channels,
    }
    for name, value in derived.items():
        if name in values and values[name] != value:
            raise ConfigError(
                f"unet.{name}: {values[name]} does not match the data / VAE / text encoder ({value})"
            )
        values[name] = value
    return build_section(ImageUNetConfig, values, "unet")


def build_unet(config: ImageStageConfig, unet_config: Any) -> Any:
    from generator.image_unet import ImageUNet

    if config.init_from is None:
        return ImageUNet.build(unet_config)
    from generator.sd_loading import load_sd_image_unet

    if not config.init_from.exists():
        raise ConfigError(f"init_from: {config.init_from} does not exist")
    return load_sd_image_unet(config.init_from, unet_config)


def build_image_stage(config: ImageStageConfig) -> StageRun:
    from generator.conditions import NULL_TEXT
    from generator.image_encoder import ImagePriorProjector

    clip_set = load_clip_set(config.data)
    dataset = FrameDataset(clip_set, config.data, clip_windows(clip_set, config.data.num_frames))
    texts = [clip_text(record, config.data) for record in clip_set.records]
    cache_dir = config.data.image_prior_cache_dir or config.output_dir / "image_prior_cache"
    frozen = load_frozen_conditioning(
        config.vae_dir, config.text_encoder_dir, config.image_encoder, cache_dir, texts
    )
    prior_seconds = warm_image_prior_cache(frozen.image_encoder, dataset)

    unet_config = image_unet_config(config, frozen, clip_set.num_classes)
    unet = build_unet(config, unet_config)
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    projector = ImagePriorProjector(frozen.image_encoder.embedding_shape[0], frozen.cross_attention_dim)
    use = {
        "class_label": unet_config.use_class,
        "text": unet_config.use_text,
        "image_prior": unet_config.use_image_prior,
    }
    conditions = TrainingConditions(projector, frozen.text_tokens[NULL_TEXT][None], clip_set.num_classes, use)
    objective = ImageDiffusionObjective(unet, conditions, config.noise)

    def export(model: nn.Module, directory: Path) -> None:
        model.unet.save_pretrained(directory / UNET_COMPONENT, safe_serialization=True)
        model.conditions.projector.save_pretrained(directory / PROJECTOR_COMPONENT, safe_serialization=True)

    return StageRun(
        model=objective,
        dataset=dataset,
        export=export,
        manifest_checksum=clip_set.manifest_checksum,
        prepare_batch=batch_conditioning(frozen),
        frozen=frozen.modules(),
        summary={
            "frames": len(dataset),
            "windows": len(dataset.windows),
            "class_names": list(clip_set.class_names),
            "image_prior_seconds": prior_seconds,
            "image_encoder": frozen.image_encoder.identity,
        },
    )
