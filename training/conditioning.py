"""Frozen parts the UNet stages condition on: the trained VAE and text encoder, the image-prior backbone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from training.checkpoint import FINAL_DIR
from training.config import ConfigError, build_section
from training.diffusion import text_token_table

VAE_COMPONENT = "vae"
TEXT_COMPONENT = "text_encoder"
UNET_COMPONENT = "unet"
PROJECTOR_COMPONENT = "image_projector"


def trained_component(run_dir: Path, component: str, setting: str) -> Path:
    """`RUN_DIR/final/<component>` of a finished `train` run, or a component folder given directly."""
    candidate = run_dir / FINAL_DIR / component
    if candidate.is_dir():
        return candidate
    if run_dir.is_dir() and not (run_dir / FINAL_DIR).exists() and any(run_dir.glob("*.json")):
        return run_dir
    raise ConfigError(f"{setting}: {run_dir} holds no trained {component} (expected {candidate})")


@dataclass
class FrozenConditioning:
    vae: Any  # diffusers AutoencoderKL
    text_encoder: Any  # generator.text_encoder.CLIPTextConditioner
    image_encoder: Any  # generator.image_encoder.ImagePriorEncoder
    text_tokens: dict[str, torch.Tensor]

    @property
    def latent_downsampling(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def cross_attention_dim(self) -> int:
        return int(self.text_encoder.width)

    def modules(self) -> list[torch.nn.Module]:
        return [self.vae, self.text_encoder, self.image_encoder]


def build_image_encoder(settings: dict[str, Any], cache_dir: Path) -> Any:
    from generator.image_encoder import ImageEncoderConfig, ImagePriorEncoder

    values = {"cache_dir": str(cache_dir), **settings}
    try:
        return ImagePriorEncoder(build_section(ImageEncoderConfig, values, "image_encoder"))
    except FileNotFoundError as exc:
        raise ConfigError(f"image_encoder: {exc}") from exc


def load_frozen_conditioning(
    vae_dir: Path, text_encoder_dir: Path, image_encoder: dict[str, Any], cache_dir: Path, texts: list[str]
) -> FrozenConditioning:
    """Loads the stage outputs and encodes every text (and the null text "") once."""
    from diffusers import AutoencoderKL

    from generator.conditions import NULL_TEXT
    from generator.text_encoder import CLIPTextConditioner

    vae = AutoencoderKL.from_pretrained(trained_component(vae_dir, VAE_COMPONENT, "vae_dir"))
    text_encoder = CLIPTextConditioner.from_pretrained(
        trained_component(text_encoder_dir, TEXT_COMPONENT, "text_encoder_dir")
    )
    for module in (vae, text_encoder):
        module.requires_grad_(False).eval()
    tokens = text_token_table(text_encoder, [NULL_TEXT, *texts])
    return FrozenConditioning(vae, text_encoder, build_image_encoder(image_encoder, cache_dir), tokens)


def warm_image_prior_cache(image_encoder: Any, dataset: Any, batch_size: int = 8) -> float:
    """Embed every window's first frame once before training (the backbone is frozen); returns seconds."""
    import time

    started = time.perf_counter()
    windows = range(len(dataset.windows))
    for first in tqdm(range(0, len(windows), batch_size), desc="image-prior embeddings", unit="batch"):
        images = [dataset.prior_image(w).numpy() for w in windows[first : first + batch_size]]
        image_encoder(images)
    return time.perf_counter() - started


class TrainingConditions(torch.nn.Module):
    """A batch's condition inputs after joint multi-condition dropout (§4.1): keep all with p = 0.1, drop all
    with p = 0.1, else each condition independently with p = 0.5; a dropped condition takes its null.

    `projector` (trainable in stage 1) turns prior embeddings into tokens; without it the batch brings
    `prior_tokens` (stage 2, where the projector is frozen).
    """

    def __init__(
        self,
        projector: torch.nn.Module | None,
        null_text: torch.Tensor,
        num_classes: int,
        use: dict[str, bool],
        null_pathways: torch.Tensor | None = None,
    ) -> None:
        from generator.conditions import CONDITION_NAMES, JointDropout

        super().__init__()
        unknown = sorted(set(use) - set(CONDITION_NAMES))
        if unknown:
            raise ValueError(f"unknown condition names {unknown}; known: {CONDITION_NAMES}")
        self.projector = projector
        self.register_buffer("null_text", null_text, persistent=False)
        self.num_classes = num_classes
        self.names = tuple(name for name in CONDITION_NAMES if use.get(name, False))
        self.null_pathways = null_pathways
        self.dropout = JointDropout()

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> Any:
        from generator.conditions import ConditionInputs, apply_keep_masks

        use = set(self.names)
        device = batch["pixels"].device
        tokens = None
        if "image_prior" in use:
            tokens = (
                self.projector(batch["prior_embeddings"])
                if self.projector is not None
                else batch["prior_tokens"]
            )
        inputs = ConditionInputs(
            class_labels=batch["class_label"] if "class_label" in use else None,
            text_tokens=batch["text_tokens"] if "text" in use else None,
            image_prior_tokens=tokens,
            motion_field=batch["motion_field"] if "motion_field" in use else None,
            pathways=batch.get("pathways") if "motion_field" in use else None,
        )
        motion = inputs.motion_field
        nulls = ConditionInputs(
            class_labels=torch.tensor([self.num_classes], device=device) if "class_label" in use else None,
            text_tokens=self.null_text if "text" in use else None,
            image_prior_tokens=tokens.new_zeros(1, *tokens.shape[1:]) if tokens is not None else None,
            motion_field=motion.new_zeros(1, *motion.shape[1:]) if motion is not None else None,
            pathways=(self.null_pathways,) if inputs.pathways is not None else None,
        )
        keep = self.dropout.sample(len(inputs), generator, self.names)
        return apply_keep_masks(inputs, keep, nulls)
