"""Classifier checkpoints: `DIR/config.json` + `DIR/model.safetensors`.

config.json holds `name`, `num_classes`, `in_channels`, `build_kwargs` (what rebuilds the
network, see `classify.registry.build_kwargs`), `normalization` ({mean, std}) and whatever
else the caller adds (class names, frames, size, training settings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_model, save_model
from torch import nn

from classify.registry import build_classifier

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
REQUIRED_FIELDS = ("num_classes", "in_channels", "build_kwargs", "normalization")


def save_classifier(directory: str | Path, model: nn.Module, name: str, config: dict[str, Any]) -> Path:
    missing = [key for key in REQUIRED_FIELDS if key not in config]
    if missing:
        raise ValueError(f"config: missing field(s) {', '.join(missing)}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / WEIGHTS_NAME))
    (directory / CONFIG_NAME).write_text(json.dumps({**config, "name": name}, indent=2, sort_keys=True))
    return directory


def load_classifier(directory: str | Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    directory = Path(directory)
    config_path = directory / CONFIG_NAME
    if not config_path.is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(f"classifier checkpoint: {directory} needs {CONFIG_NAME} and {WEIGHTS_NAME}")
    meta = json.loads(config_path.read_text())
    missing = [key for key in ("name", *REQUIRED_FIELDS) if key not in meta]
    if missing:
        raise ValueError(f"{config_path}: missing field(s) {', '.join(missing)}")
    model = build_classifier(meta["name"], meta["num_classes"], meta["in_channels"], **meta["build_kwargs"])
    load_model(model, str(directory / WEIGHTS_NAME), strict=True, device=device)
    return model.to(device).eval(), meta
