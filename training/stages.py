"""One entry point per run config: build the stage and train it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import (
    ClassifierStageConfig,
    ImageStageConfig,
    SequenceStageConfig,
    TextStageConfig,
    VAEStageConfig,
)
from training.trainer import TrainResult, train


def build_stage(config: Any) -> Any:
    if isinstance(config, VAEStageConfig):
        from training.vae_stage import build_vae_stage

        return build_vae_stage(config)
    if isinstance(config, TextStageConfig):
        from training.text_stage import build_text_stage

        return build_text_stage(config)
    if isinstance(config, ImageStageConfig):
        from training.image_stage import build_image_stage

        return build_image_stage(config)
    if isinstance(config, SequenceStageConfig):
        from training.sequence_stage import build_sequence_stage

        return build_sequence_stage(config)
    raise TypeError(f"no generator stage for {type(config).__name__}")


def run_stage(config: Any, resume: bool | Path = False, show_progress: bool = True) -> TrainResult:
    """Train the stage `config` describes; the classifier has classify/'s own loop (no resume)."""
    if isinstance(config, ClassifierStageConfig):
        from training.classifier_stage import train_classifier_stage

        if resume:
            from training.config import ConfigError

            raise ConfigError(
                "--resume: the classifier stage trains in one go (classify/'s loop has no resume)"
            )
        return train_classifier_stage(config, show_progress=show_progress)
    return train(config, build_stage(config), resume=resume, show_progress=show_progress)
