"""Stage-1 image UNet (paper §3.2): diffusers' UNet2DConditionModel with the class-label embedding
(§3.3 "Class Label") and decoupled text / image-prior cross-attention (§3.3 "Image Prior", Eq. 2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from generator.attention import DecoupledCrossAttnProcessor, SpatialSelfAttnProcessor, check_plain_attention
from generator.config import ImageUNetConfig, config_from_values


def spatial_transformer_blocks(unet: UNet2DConditionModel) -> Iterator[tuple[str, BasicTransformerBlock]]:
    """The transformer blocks of the UNet's spatial transformers (not the sequential-attention ones)."""
    for name, module in unet.named_modules():
        if isinstance(module, Transformer2DModel):
            for i, block in enumerate(module.transformer_blocks):
                yield f"{name}.transformer_blocks.{i}", block


def set_processor(attn: Attention, processor: object) -> None:
    """`Attention.set_processor`, whose annotation names one diffusers processor class only."""
    attn.set_processor(processor)  # type: ignore[arg-type]


def install_cross_attention(unet: UNet2DConditionModel, image_branch: bool) -> None:
    """Give every spatial cross-attention (attn2) a decoupled processor (Eq. 2), named after its block."""
    for name, block in spatial_transformer_blocks(unet):
        check_plain_attention(block.attn2)
        set_processor(
            block.attn2,
            DecoupledCrossAttnProcessor(
                block.attn2.to_k.out_features, block.attn2.to_k.in_features, image_branch, layer=name
            ),
        )


def has_image_branch(unet: UNet2DConditionModel) -> bool:
    processors = [block.attn2.processor for _, block in spatial_transformer_blocks(unet)]
    return bool(processors) and all(
        isinstance(p, DecoupledCrossAttnProcessor) and p.image_branch for p in processors
    )


def build_image_unet(cfg: ImageUNetConfig) -> UNet2DConditionModel:
    """A Stable-Diffusion-shaped 2D UNet with class embedding (num_classes + 1 rows, last = null class)."""
    unet = UNet2DConditionModel(
        sample_size=cfg.sample_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        down_block_types=tuple(cfg.down_block_types),
        up_block_types=tuple(cfg.up_block_types),
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        attention_head_dim=cfg.attention_head_dim,
        norm_num_groups=cfg.norm_num_groups,
        cross_attention_dim=cfg.cross_attention_dim,
        num_class_embeds=cfg.num_classes + 1 if cfg.use_class else None,
    )
    for _, block in spatial_transformer_blocks(unet):
        check_plain_attention(block.attn1)
        set_processor(block.attn1, SpatialSelfAttnProcessor())
    install_cross_attention(unet, image_branch=cfg.use_image_prior)
    return unet


@torch.no_grad()
def init_image_branch_from_text(unet: UNet2DConditionModel) -> None:
    """Start the image branch as a copy of the text branch (IP-Adapter's initialisation of K/V, extended to
    the image branch's own query and output projections); call after loading pretrained weights."""
    for name, block in spatial_transformer_blocks(unet):
        processor = block.attn2.processor
        if not (isinstance(processor, DecoupledCrossAttnProcessor) and processor.image_branch):
            raise ValueError(f"{name}.attn2 has no image-prior branch")
        processor.to_q_img.weight.copy_(block.attn2.to_q.weight)
        processor.to_k_img.weight.copy_(block.attn2.to_k.weight)
        processor.to_v_img.weight.copy_(block.attn2.to_v.weight)
        processor.to_out_img.weight.copy_(block.attn2.to_out[0].weight)


def null_class_index(unet: UNet2DConditionModel) -> int | None:
    """Row of the null class in the class embedding, None when the UNet has no class embedding."""
    rows = unet.config["num_class_embeds"]
    return None if rows is None else rows - 1


def resolve_class_labels(
    unet: UNet2DConditionModel, class_labels: torch.Tensor | None, batch: int, device: torch.device
) -> torch.Tensor | None:
    """Validate class labels; None means the null class (dropped condition)."""
    null = null_class_index(unet)
    if null is None:
        if class_labels is not None:
            raise ValueError(
                "class_labels given but the UNet was built without a class embedding (use_class=False)"
            )
        return None
    if class_labels is None:
        return torch.full((batch,), null, dtype=torch.long, device=device)
    if class_labels.shape != (batch,) or class_labels.dtype != torch.long:
        raise ValueError(
            f"class_labels must be a LongTensor of shape ({batch},), got {class_labels.dtype} "
            f"{tuple(class_labels.shape)}"
        )
    if bool(((class_labels < 0) | (class_labels > null)).any()):
        raise ValueError(f"class_labels must lie in [0, {null}] ({null} = null class)")
    return class_labels


def check_tokens(name: str, tokens: torch.Tensor | None, batch: int, dim: int) -> None:
    if tokens is not None and (tokens.ndim != 3 or tokens.shape[0] != batch or tokens.shape[2] != dim):
        raise ValueError(f"{name} must have shape ({batch}, N, {dim}), got {tuple(tokens.shape)}")


def check_text_tokens(text_tokens: torch.Tensor | None, use_text: bool, batch: int, dim: int) -> None:
    if use_text and text_tokens is None:
        raise ValueError('text_tokens is required (the null text is the text encoder\'s output for "")')
    if not use_text and text_tokens is not None:
        raise ValueError("text_tokens given but the UNet was built with use_text=False")
    check_tokens("text_tokens", text_tokens, batch, dim)


class ImageUNet(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """Stage-1 model: `build_image_unet` with save/load and the keyword API shared with `SequenceUNet`."""

    _supports_gradient_checkpointing = True
    unet: UNet2DConditionModel

    @register_to_config
    def __init__(
        self,
        num_classes: int = 3,
        sample_size: int = 32,
        in_channels: int = 4,
        out_channels: int = 4,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        down_block_types: tuple[str, ...] = ImageUNetConfig.down_block_types,
        up_block_types: tuple[str, ...] = ImageUNetConfig.up_block_types,
        layers_per_block: int = 2,
        attention_head_dim: int = 8,
        norm_num_groups: int = 32,
        cross_attention_dim: int = 768,
        use_text: bool = True,
        use_image_prior: bool = True,
        use_class: bool = True,
    ) -> None:
        super().__init__()
        self.unet = build_image_unet(self.settings)

    @classmethod
    def build(cls, cfg: ImageUNetConfig) -> ImageUNet:
        return cls(**asdict(cfg))

    @property
    def settings(self) -> ImageUNetConfig:
        return config_from_values(ImageUNetConfig, self.config)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        text_tokens: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        image_prior_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """sample (B, 4, h, w), timestep scalar or (B,), text_tokens (B, L, D), class_labels (B,) long
        (None: null class), image_prior_tokens (B, N, D) (None: no image prior) -> noise (B, 4, h, w)."""
        if sample.ndim != 4:
            raise ValueError(f"sample must have shape (B, C, h, w), got {tuple(sample.shape)}")
        batch, dim = sample.shape[0], self.config["cross_attention_dim"]
        check_text_tokens(text_tokens, self.config["use_text"], batch, dim)
        check_tokens("image_prior_tokens", image_prior_tokens, batch, dim)
        labels = resolve_class_labels(self.unet, class_labels, batch, sample.device)
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=text_tokens,
            class_labels=labels,
            cross_attention_kwargs={"image_prior_tokens": image_prior_tokens},
        ).sample
