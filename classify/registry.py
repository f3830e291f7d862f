"""Named sequence classifiers: `build_classifier(name, num_classes, in_channels=1, **kw)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from classify import architectures


@dataclass(frozen=True)
class ClassifierSpec:
    builder: Callable[..., nn.Module]
    family: str
    tiny_kwargs: dict[str, Any] = field(default_factory=dict)
    # Positional tables fix the input; such builders need `frames` and `size`.
    fixed_input_size: bool = False


CLASSIFIERS: dict[str, ClassifierSpec] = {
    "i3d": ClassifierSpec(architectures.build_i3d, "CNN", {"width": 8}),
    "csn": ClassifierSpec(architectures.build_csn, "CNN", {"width": 8, "depth": 50}),
    "r2plus1d": ClassifierSpec(architectures.build_r2plus1d, "CNN"),
    "resnet3d": ClassifierSpec(architectures.build_resnet3d, "CNN", {"widen_factor": 0.125}),
    "mvit_v2_s": ClassifierSpec(
        architectures.build_mvit_v2_s,
        "Transformer",
        {"width": 16, "depths": (1, 1, 1, 1)},
        fixed_input_size=True,
    ),
    "swin3d_t": ClassifierSpec(
        architectures.build_swin3d_t,
        "Transformer",
        {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 2, 4), "window_size": (4, 4, 4)},
    ),
}


def list_classifiers() -> list[str]:
    return sorted(CLASSIFIERS)


def classifier_spec(name: str) -> ClassifierSpec:
    if name not in CLASSIFIERS:
        raise ValueError(f"classifier: unknown name {name!r}; choose one of {', '.join(list_classifiers())}")
    return CLASSIFIERS[name]


def build_kwargs(
    name: str, tiny: bool = False, frames: int | None = None, size: int | None = None, **kw: Any
) -> dict[str, Any]:
    """The keyword arguments that rebuild this classifier (stored in its checkpoint)."""
    spec = classifier_spec(name)
    kwargs = {**(spec.tiny_kwargs if tiny else {}), **kw}
    if spec.fixed_input_size:
        if frames is None or size is None:
            raise ValueError(f"classifier {name!r} needs `frames` and `size` (its input size is fixed)")
        kwargs.update(frames=frames, size=size)
    return kwargs


def build_classifier(
    name: str,
    num_classes: int,
    in_channels: int = 1,
    *,
    tiny: bool = False,
    frames: int | None = None,
    size: int | None = None,
    pretrained_path: str | Path | None = None,
    **kw: Any,
) -> nn.Module:
    """Input `(B, in_channels, F, H, W)` normalised float (see `classify.preprocess`), output
    logits `(B, num_classes)`. No download: pretrained weights only from `pretrained_path`."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}")
    kwargs = build_kwargs(name, tiny=tiny, frames=frames, size=size, **kw)
    model = classifier_spec(name).builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    if pretrained_path is not None:
        from classify.pretrained import load_pretrained_weights

        load_pretrained_weights(model, pretrained_path)
    return model
