"""`train text`: contrastive fine-tuning of the open_clip CLIP on the dataset's (frame, text) pairs (§3.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import ConfigError, TextStageConfig, build_section
from training.data import TextFrameDataset, load_clip_set
from training.trainer import Batch, StageRun

TEXT_COMPONENT = "text_encoder"


class ContrastiveObjective(nn.Module):
    """open_clip's ClipLoss over a batch of (frame, text) pairs, CLIP's learned temperature included."""

    def __init__(self, conditioner: Any) -> None:
        import open_clip

        super().__init__()
        self.conditioner = conditioner
        self.clip_loss = open_clip.ClipLoss()

    def forward(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        clip = self.conditioner.clip
        # ClipLoss takes column i as row i's only positive: a text repeated in the batch (many frames and
        # clips share one) would be its own negative, so each distinct text enters once, with one frame.
        first = {text: i for i, text in reversed(list(enumerate(batch["text"])))}
        rows = sorted(first.values())
        tokens = self.conditioner.tokenize([batch["text"][i] for i in rows]).to(batch["image"].device)
        image_features = clip.encode_image(batch["image"][rows], normalize=True)
        text_features = clip.encode_text(tokens, normalize=True)
        logit_scale = clip.logit_scale.exp()
        loss = self.clip_loss(image_features, text_features, logit_scale)
        return {
            "loss": loss,
            "logit_scale": logit_scale.detach(),
            "distinct_texts": torch.tensor(float(len(rows))),
        }


def build_text_conditioner(config: TextStageConfig) -> Any:
    from generator.text_encoder import CLIPTextConditioner, TextEncoderConfig

    if config.init_from is not None:
        if config.text_encoder:
            raise ConfigError("text_encoder: leave it empty when init_from names a saved text encoder")
        try:
            return CLIPTextConditioner.from_pretrained(config.init_from)
        except FileNotFoundError as exc:
            raise ConfigError(f"init_from: {exc}") from exc
    return CLIPTextConditioner(build_section(TextEncoderConfig, config.text_encoder, "text_encoder"))


def build_text_stage(config: TextStageConfig) -> StageRun:
    clip_set = load_clip_set(config.data)
    conditioner = build_text_conditioner(config)
    if config.gradient_checkpointing:
        conditioner.clip.set_grad_checkpointing(True)

    def transform(frame: np.ndarray) -> torch.Tensor:
        return conditioner.preprocess_frames(frame[None])[0]

    dataset = TextFrameDataset(clip_set, config.data, transform)
    conditioner.requires_grad_(True)

    def export(model: nn.Module, directory: Path) -> None:
        model.conditioner.save_pretrained(directory / TEXT_COMPONENT)

    texts = {dataset.clip_set.records[index].clip_id for index, _ in dataset.items}
    return StageRun(
        model=ContrastiveObjective(conditioner),
        dataset=dataset,
        export=export,
        manifest_checksum=clip_set.manifest_checksum,
        summary={"pairs": len(dataset), "clips_with_text": len(texts)},
    )
