"""Loading pretrained classifier weights from a local file (never from a hub)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_path: no file at {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return state


def adapt_stem_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB stem kernels for a grayscale input: sum over the colour channels (a gray pixel
    replicated to R, G and B gives the same activation)."""
    summed = weight.sum(dim=1, keepdim=True)
    return summed.repeat(1, in_channels, *([1] * (weight.ndim - 2))) / in_channels


def load_pretrained_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Copy matching tensors into `model`; stem kernels with another input-channel count are
    summed over colours; tensors of other shapes (the classification head for another class
    count) keep their fresh initialisation. Returns the names left freshly initialised."""
    source = read_state_dict(path)
    target = model.state_dict()
    missing = [key for key in target if key not in source]
    if missing:
        raise ValueError(f"pretrained_path {path}: does not fit this classifier, missing {missing[:5]}")
    loaded: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key, tensor in target.items():
        weight = source[key]
        if weight.shape == tensor.shape:
            loaded[key] = weight
        elif weight.ndim >= 4 and weight.shape[0] == tensor.shape[0] and weight.shape[2:] == tensor.shape[2:]:
            loaded[key] = adapt_stem_channels(weight, tensor.shape[1])
        else:
            skipped.append(key)
    model.load_state_dict({**target, **loaded})
    return skipped
