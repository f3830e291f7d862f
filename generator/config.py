"""Configuration dataclasses of the generator's UNets (stage-1 image UNet, stage-2 sequence UNet)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT")
SEQUENTIAL_ATTENTION_FORMS = ("attention", "transformer")


def config_from_values(cls: type[ConfigT], values: Mapping[str, Any]) -> ConfigT:
    """Rebuild a config dataclass from a diffusers model config (whose JSON turns tuples into lists)."""
    picked = {f.name: values[f.name] for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in picked.items()})


@dataclass(frozen=True)
class ImageUNetConfig:
    """Stage-1 2D UNet (paper §3.2); Stable Diffusion 1.x shape by default.

    `num_classes` real classes get embedding rows 0..num_classes-1; row `num_classes` is the null class
    (§3.3 "Class Label", dropped/unconditional). `use_class=False` builds no class embedding,
    `use_image_prior=False` no image branch in the cross-attentions, `use_text=False` makes the
    cross-attentions ignore text (the text projections stay, unused).
    """

    num_classes: int = 3
    sample_size: int = 32
    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    down_block_types: tuple[str, ...] = (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    )
    up_block_types: tuple[str, ...] = (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    )
    layers_per_block: int = 2
    attention_head_dim: int = 8
    norm_num_groups: int = 32
    cross_attention_dim: int = 768
    use_text: bool = True
    use_image_prior: bool = True
    use_class: bool = True

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if len(self.down_block_types) != len(self.block_out_channels):
            raise ValueError("down_block_types must have one entry per block_out_channels entry")
        if len(self.up_block_types) != len(self.block_out_channels):
            raise ValueError("up_block_types must have one entry per block_out_channels entry")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(
                f"block_out_channels must be divisible by norm_num_groups={self.norm_num_groups}"
            )

    @classmethod
    def tiny(cls, num_classes: int = 3) -> ImageUNetConfig:
        """A two-level UNet for CPU tests (full-resolution and one down-sampled cross-attention level)."""
        return cls(
            num_classes=num_classes,
            sample_size=8,
            block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            layers_per_block=1,
            attention_head_dim=4,
            norm_num_groups=16,
            cross_attention_dim=24,
        )


@dataclass(frozen=True)
class SequenceUNetConfig:
    """Stage-2 inflation of the image UNet (paper §3.2 inflation, §3.3 motion field, §3.4 SAM).

    Ablations: Table 7 "Ours-S" = use_sa only, "Ours-SK" = + use_ka, "Ours-SKM" = + use_mfa;
    Table 6 drops conditions with use_class / use_text / use_image_prior / use_motion.
    `sequential_attention`: the SA layer's form (`generator.sequential_attention`), ``"attention"`` (the
    authors': LayerNorm + self-attention across frames) or ``"transformer"`` (diffusers'
    TransformerTemporalModel with a feed-forward; a model saved without this field was built with it);
    `sa_num_layers` stacks transformer layers in the latter. `mfa_gate_init`: MFA's gate at inflation,
    0 = the inflated model equals the image model at start, 1 = the paper's form (KA's output replaced
    by MFA over it, §3.4); the gate is trained in stage 2 either way (docs/decisions.md).
    """

    use_sa: bool = True
    use_ka: bool = True
    use_mfa: bool = True
    use_motion: bool = True
    use_text: bool = True
    use_image_prior: bool = True
    use_class: bool = True
    sa_num_layers: int = 1
    motion_embedding_channels: int = 320
    motion_block_out_channels: tuple[int, ...] = (16, 32, 96, 256)
    motion_scale_px: float = 8.0
    sequential_attention: str = "attention"
    mfa_gate_init: float = 0.0

    def __post_init__(self) -> None:
        if self.sa_num_layers < 1:
            raise ValueError(f"sa_num_layers must be >= 1, got {self.sa_num_layers}")
        if self.sequential_attention not in SEQUENTIAL_ATTENTION_FORMS:
            raise ValueError(
                f"sequential_attention must be one of {SEQUENTIAL_ATTENTION_FORMS}, "
                f"got {self.sequential_attention!r}"
            )
        if self.sequential_attention == "attention" and self.sa_num_layers != 1:
            raise ValueError(
                f"sa_num_layers applies to sequential_attention='transformer', got {self.sa_num_layers}"
            )
        if len(self.motion_block_out_channels) < 2:
            raise ValueError("motion_block_out_channels needs at least two entries (one stride-2 stage)")
        if self.motion_embedding_channels < 1:
            raise ValueError(f"motion_embedding_channels must be >= 1, got {self.motion_embedding_channels}")
        if self.motion_scale_px <= 0:
            raise ValueError(f"motion_scale_px must be > 0, got {self.motion_scale_px}")

    @property
    def motion_downsampling(self) -> int:
        """Pixels per latent cell the motion encoder reaches (2 ** number of stride-2 stages)."""
        return 2 ** (len(self.motion_block_out_channels) - 1)

    @classmethod
    def tiny(cls, **overrides: object) -> SequenceUNetConfig:
        """Small motion encoder for CPU tests; flags default to the full model."""
        fields: dict[str, object] = {
            "motion_embedding_channels": 8,
            "motion_block_out_channels": (4, 8, 8, 16),
        }
        fields.update(overrides)
        return cls(**fields)  # type: ignore[arg-type]
