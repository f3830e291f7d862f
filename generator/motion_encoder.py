"""Motion encoder (paper §3.3 "Sequential Condition"): per-frame conv stack on the motion field whose
features are concatenated to the noisy latents on channels, through a zero-initialised extension of
the UNet's ``conv_in``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
from torch import nn


class MotionEncoder(nn.Module):
    """ControlNet-style conditioning embedding of a 2-channel motion field, one frame at a time.

    Input (B, F, 2, H, W) in pixels; output (B*F, channels, H/s, W/s) with frames folded as (b f),
    s = 2 ** (len(block_out_channels) - 1). Displacements are divided by ``scale_px`` and frame 0 is
    forced to zero motion. The last conv keeps its default init (diffusers zero-inits it): the
    zero-init sits in `MotionConcatConvIn`, and two zero layers in a row would never learn.
    """

    def __init__(self, channels: int, block_out_channels: tuple[int, ...], scale_px: float) -> None:
        super().__init__()
        self.embedding = ControlNetConditioningEmbedding(
            conditioning_embedding_channels=channels,
            conditioning_channels=2,
            block_out_channels=tuple(block_out_channels),
        )
        self.embedding.conv_out.reset_parameters()
        self.downsampling = 2 ** (len(block_out_channels) - 1)
        self.scale_px = scale_px

    def forward(self, motion_field: torch.Tensor) -> torch.Tensor:
        batch, frames, channels, height, width = motion_field.shape
        if channels != 2:
            raise ValueError(f"motion_field must have shape (B, F, 2, H, W), got {tuple(motion_field.shape)}")
        field = motion_field / self.scale_px
        field = torch.cat([torch.zeros_like(field[:, :1]), field[:, 1:]], dim=1)
        dtype = self.embedding.conv_in.weight.dtype
        return self.embedding(field.reshape(batch * frames, 2, height, width).to(dtype))


class MotionConcatConvIn(nn.Conv2d):
    """The UNet's ``conv_in`` over [latents || motion features]: the original weights see the latent
    channels, ``motion_weight`` (zero at start) the motion channels. Equal to one conv with
    ``in_channels + motion_channels`` inputs whose new input weights are zero-initialised, but keeps the
    pretrained weights a separate, frozen parameter.

    The motion features do not change during sampling, so their share of the conv (`motion_term`) is
    computed once per batch: the layer takes [latents || motion term] (``out_channels`` term channels) and
    adds the term to the conv of the latents.
    """

    def __init__(self, conv: nn.Conv2d, motion_channels: int) -> None:
        if conv.padding_mode != "zeros" or conv.groups != 1:
            raise ValueError("conv_in must be an ungrouped zero-padded convolution")
        geometry: dict[str, Any] = {
            "kernel_size": conv.kernel_size,
            "stride": conv.stride,
            "padding": conv.padding,
            "dilation": conv.dilation,
        }
        super().__init__(conv.in_channels, conv.out_channels, bias=conv.bias is not None, **geometry)
        self.load_state_dict(conv.state_dict())
        self.motion_weight = nn.Parameter(torch.zeros(conv.out_channels, motion_channels, *conv.kernel_size))

    def motion_term(self, features: torch.Tensor) -> torch.Tensor:
        """The motion features' share of the conv, ``(N, out_channels, h, w)``."""
        return F.conv2d(features, self.motion_weight, None, self.stride, self.padding, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        expected = self.in_channels + self.out_channels
        if x.shape[1] != expected:
            raise ValueError(f"conv_in expects {expected} channels (latents + motion term), got {x.shape[1]}")
        latents, motion_term = x[:, : self.in_channels], x[:, self.in_channels :]
        return super().forward(latents) + motion_term
