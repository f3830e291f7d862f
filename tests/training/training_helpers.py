"""Tiny stage configs for the training tests (each a few seconds on a CPU core)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

FRAMES = 8
SIZE = 32


def fast_optimizer(lr: float = 2e-3) -> dict[str, Any]:
    return {"lr": lr, "warmup_steps": 0, "schedule": "constant_with_warmup"}


def vae_config(data_dir: Path, out: Path, steps: int, **overrides: Any) -> dict[str, Any]:
    return {
        "stage": "vae",
        "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "resolution": SIZE, "num_frames": FRAMES},
        "vae": {
            "block_out_channels": [8, 8, 16, 16],
            "layers_per_block": 1,
            "norm_num_groups": 4,
            "sample_size": SIZE,
        },
        "batch_size": 48,
        "max_steps": steps,
        "checkpoint_every": steps,
        "log_every": 1,
        "optimizer": fast_optimizer(),
        **overrides,
    }


def text_config(data_dir: Path, out: Path, steps: int) -> dict[str, Any]:
    from generator.text_encoder import TextEncoderConfig

    encoder = {k: v for k, v in asdict(TextEncoderConfig.tiny()).items() if k != "checkpoint_path"}
    return {
        "stage": "text",
        "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "resolution": SIZE, "num_frames": FRAMES},
        "text_encoder": encoder,
        "batch_size": 40,
        "max_steps": steps,
        "checkpoint_every": steps,
        "log_every": 1,
        "optimizer": fast_optimizer(5e-4),
    }


def image_config(
    data_dir: Path, out: Path, vae_dir: Path, text_dir: Path, steps: int, **overrides: Any
) -> dict:
    return {
        "stage": "image",
        "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "resolution": SIZE, "num_frames": FRAMES},
        "vae_dir": str(vae_dir),
        "text_encoder_dir": str(text_dir),
        "image_encoder": {"backbone": "tiny", "tiny_image_size": 32, "tiny_channels": 8},
        "unet": {
            "block_out_channels": [16, 32],
            "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
            "layers_per_block": 1,
            "attention_head_dim": 4,
            "norm_num_groups": 8,
        },
        "batch_size": 48,
        "max_steps": steps,
        "checkpoint_every": steps,
        "log_every": 1,
        "optimizer": fast_optimizer(),
        "ema": None,  # a handful of steps: EMA would hide what training did (its own test enables it)
        **overrides,
    }


def sequence_config(data_dir: Path, out: Path, image_dir: Path, steps: int) -> dict[str, Any]:
    return {
        "stage": "sequence",
        "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "resolution": SIZE, "num_frames": FRAMES},
        "image_stage_dir": str(image_dir),
        "sequence_unet": {"motion_embedding_channels": 8, "motion_block_out_channels": [4, 8, 8, 16]},
        "batch_size": 6,
        "max_steps": steps,
        "checkpoint_every": steps,
        "log_every": 1,
        "optimizer": fast_optimizer(5e-3),
        "ema": None,
    }


def classifier_config(data_dir: Path, out: Path, epochs: int) -> dict[str, Any]:
    return {
        "stage": "classifier",
        "output_dir": str(out),
        "data": {"data_dir": str(data_dir), "resolution": SIZE, "num_frames": FRAMES},
        "architecture": "i3d",
        "tiny": True,
        "augmentation": "none",
        "batch_size": 5,
        "epochs": epochs,
        "lr": 1e-3,
        "device": "cpu",
    }


def fixed_batch_loss(run: Any, seeds: tuple[int, ...] = (0, 1, 2, 3)) -> float:
    """The stage's loss on the whole (one-batch) dataset, averaged over fixed noise/dropout draws."""
    from training.data import collate

    batch = collate([run.dataset[i] for i in range(len(run.dataset))])
    losses = []
    with torch.no_grad():
        for seed in seeds:
            prepared = batch
            if run.prepare_batch is not None:
                prepared = run.prepare_batch(batch, torch.Generator().manual_seed(seed))
            losses.append(float(run.model(prepared, torch.Generator().manual_seed(seed))["loss"]))
    return float(np.mean(losses))
