"""`train sequence` (stage 2, §3.2-3.4): inflate the stage-1 UNet and train only SA, KA, MFA, the motion
encoder and the cross-attention queries, on clip windows with their motion fields and MFA pathways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.checkpoint import CONFIG_FILE, FINAL_DIR
from training.conditioning import (
    PROJECTOR_COMPONENT,
    UNET_COMPONENT,
    FrozenConditioning,
    TrainingConditions,
    load_frozen_conditioning,
    trained_component,
    warm_image_prior_cache,
)
from training.config import ConfigError, ImageStageConfig, SequenceStageConfig, build_section, parse_config
from training.data import ClipWindowDataset, clip_text, load_clip_set
from training.image_stage import ImageDiffusionObjective, batch_conditioning
from training.trainer import Batch, StageRun


class SequenceDiffusionObjective(ImageDiffusionObjective):
    """Eq. (1) on clip windows with the inflated sequence UNet and the motion condition (§3.3)."""

    def extra_unet_inputs(self, cond: Any) -> dict[str, Any]:
        pathways = list(cond.pathways) if cond.pathways is not None else None
        return {"motion_field": cond.motion_field, "pathways": pathways}


def image_stage_config(image_stage_dir: Path) -> ImageStageConfig:
    path = image_stage_dir / FINAL_DIR / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"image_stage_dir: {image_stage_dir} is not a finished `train image` run ({path} missing)"
        )
    return parse_config(json.loads(path.read_text()), stage="image")


def sequence_conditioning(frozen: FrozenConditioning, projector: nn.Module, m: int, use_mfa: bool) -> Any:
    """Stage 1's no-grad conditioning plus the frozen projector's prior tokens and seeded MFA pathways."""
    from generator.pathways import sample_pathways

    base = batch_conditioning(frozen)

    def prepare(batch: Batch, generator: torch.Generator) -> Batch:
        batch = base(batch, generator)
        batch["prior_tokens"] = projector(batch["prior_embeddings"])
        if use_mfa:
            seeds = torch.randint(0, 2**31 - 1, (len(batch["motion_field"]),), generator=generator).tolist()
            batch["pathways"] = tuple(
                sample_pathways(field, m=m, seed=seed)
                for field, seed in zip(batch["motion_field"], seeds, strict=True)
            )
        return batch

    return prepare


def build_sequence_stage(config: SequenceStageConfig) -> StageRun:
    from generator.conditions import NULL_TEXT
    from generator.config import SequenceUNetConfig
    from generator.image_encoder import ImagePriorProjector
    from generator.image_unet import ImageUNet
    from generator.pathways import straight_pathways
    from generator.sequence_unet import SequenceUNet

    stage1 = image_stage_config(config.image_stage_dir)
    clip_set = load_clip_set(config.data)
    if config.data.resolution != stage1.data.resolution:
        raise ConfigError(
            f"data.resolution: {config.data.resolution} differs from the image stage's "
            f"{stage1.data.resolution}"
        )
    motion_dir = config.motion_cache_dir or config.data.data_dir / "motion"
    dataset = ClipWindowDataset(clip_set, config.data, motion_dir)
    texts = [clip_text(record, config.data) for record in clip_set.records]
    cache_dir = (
        config.data.image_prior_cache_dir
        or stage1.data.image_prior_cache_dir
        or (stage1.output_dir / "image_prior_cache")
    )
    frozen = load_frozen_conditioning(
        stage1.vae_dir, stage1.text_encoder_dir, stage1.image_encoder, cache_dir, texts
    )
    if config.pathway_downsample != frozen.latent_downsampling:
        raise ConfigError(
            f"pathway_downsample: MFA runs on the full-resolution latents, so m must be the VAE's "
            f"downsampling {frozen.latent_downsampling}, got {config.pathway_downsample}"
        )
    prior_seconds = warm_image_prior_cache(frozen.image_encoder, dataset)

    image_unet = ImageUNet.from_pretrained(
        trained_component(config.image_stage_dir, UNET_COMPONENT, "image_stage_dir")
    )
    if image_unet.config.num_classes != clip_set.num_classes:
        raise ConfigError(
            f"data: {clip_set.num_classes} classes but the image stage was trained on "
            f"{image_unet.config.num_classes}"
        )
    projector = ImagePriorProjector.from_pretrained(
        trained_component(config.image_stage_dir, PROJECTOR_COMPONENT, "image_stage_dir")
    )
    settings = build_section(SequenceUNetConfig, config.sequence_unet, "sequence_unet")
    unet = SequenceUNet.from_image_unet(image_unet, settings)
    unet.freeze_for_stage2()
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    latent = config.data.resolution // frozen.latent_downsampling
    use = {
        "class_label": settings.use_class,
        "text": settings.use_text,
        "image_prior": settings.use_image_prior,
        "motion_field": settings.use_motion,
    }
    null_pathways = straight_pathways(config.data.num_frames, latent, latent) if settings.use_mfa else None
    conditions = TrainingConditions(
        None, frozen.text_tokens[NULL_TEXT][None], clip_set.num_classes, use, null_pathways
    )
    objective = SequenceDiffusionObjective(unet, conditions, config.noise)

    def export(model: nn.Module, directory: Path) -> None:
        model.unet.save_pretrained(directory / UNET_COMPONENT, safe_serialization=True)
        projector.save_pretrained(directory / PROJECTOR_COMPONENT, safe_serialization=True)

    trainable = sum(p.numel() for p in unet.parameters() if p.requires_grad)
    return StageRun(
        model=objective,
        dataset=dataset,
        export=export,
        manifest_checksum=clip_set.manifest_checksum,
        prepare_batch=sequence_conditioning(frozen, projector, config.pathway_downsample, settings.use_mfa),
        frozen=[*frozen.modules(), projector],
        summary={
            "windows": len(dataset),
            "class_names": list(clip_set.class_names),
            "trainable_parameters": trainable,
            "total_parameters": sum(p.numel() for p in unet.parameters()),
            "image_prior_seconds": prior_seconds,
            "image_stage": str(config.image_stage_dir),
        },
    )
