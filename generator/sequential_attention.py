"""Sequential attention (SA, paper §3.2 "2D-to-3D Model Inflation", Fig. 5a): each latent patch attends to the
patches at the same spatial position across frames/slices, with no positional encoding.

Two forms, chosen by `SequenceUNetConfig.sequential_attention`:
- ``"attention"``: the authors' form (a LayerNorm and one self-attention across frames, added to its input),
  the default for new models;
- ``"transformer"``: diffusers' `TransformerTemporalModel` (GroupNorm, proj_in, self-attention + GEGLU
  feed-forward, proj_out), kept so models trained with it load as they were built.
Either starts as the identity: its output projection is zero.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.transformers.transformer_temporal import (
    TransformerTemporalModel,
    TransformerTemporalModelOutput,
)
from torch import nn


class SequentialAttention(nn.Module):
    """The authors' SA: ``x + Attention(LayerNorm(x))`` over the frames of each latent position.

    Called like the `TransformerTemporalModel` it stands in for: ``(B*F, C, H, W)`` with frames folded as
    (b f), ``num_frames``, ``return_dict``. The LayerNorm is per token, so a position's output depends on
    that position's frames only (Fig. 5a); diffusers' temporal transformer normalises over groups of
    channels across all positions and frames.
    """

    def __init__(self, channels: int, num_attention_heads: int, attention_head_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.attention = Attention(
            query_dim=channels,
            heads=num_attention_heads,
            dim_head=attention_head_dim,
            out_bias=True,
            processor=AttnProcessor2_0(),
        )
        nn.init.zeros_(self.attention.to_out[0].weight)
        nn.init.zeros_(self.attention.to_out[0].bias)

    def forward(
        self, hidden_states: torch.Tensor, num_frames: int, return_dict: bool = True
    ) -> TransformerTemporalModelOutput | tuple[torch.Tensor]:
        batch_frames, channels, height, width = hidden_states.shape
        batch = batch_frames // num_frames
        tokens = (
            hidden_states.reshape(batch, num_frames, channels, height * width)
            .permute(0, 3, 1, 2)
            .reshape(batch * height * width, num_frames, channels)
        )
        tokens = tokens + self.attention(self.norm(tokens))
        out = (
            tokens.reshape(batch, height * width, num_frames, channels)
            .permute(0, 2, 3, 1)
            .reshape(batch_frames, channels, height, width)
        )
        return TransformerTemporalModelOutput(sample=out) if return_dict else (out,)


def sequential_attention(
    spatial: Transformer2DModel, form: str, num_layers: int, norm_num_groups: int
) -> SequentialAttention | TransformerTemporalModel:
    """SA after the spatial transformer ``spatial``, with its heads, in ``form`` (validated by
    `SequenceUNetConfig`); ``num_layers`` and ``norm_num_groups`` shape the ``"transformer"`` form only."""
    if form == "attention":
        return SequentialAttention(
            spatial.in_channels, spatial.num_attention_heads, spatial.attention_head_dim
        )
    attention = TransformerTemporalModel(
        num_attention_heads=spatial.num_attention_heads,
        attention_head_dim=spatial.attention_head_dim,
        in_channels=spatial.in_channels,
        num_layers=num_layers,
        norm_num_groups=norm_num_groups,
        double_self_attention=False,
    )
    nn.init.zeros_(attention.proj_out.weight)
    nn.init.zeros_(attention.proj_out.bias)
    return attention
