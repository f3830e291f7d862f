"""Attention processors of the Ctrl-GenAug UNets (diffusers `Attention` processor interface, SDPA).

All processors accept the same extra keyword arguments, passed by the UNets through
``cross_attention_kwargs``: ``image_prior_tokens`` (B*, N_img, D) and ``frame_context``
(a `FrameContext` in the sequence UNet, None in the image UNet); each uses what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from generator.pathways import PathwayIndex


@dataclass(frozen=True)
class CrossAttentionKeys:
    """One cross-attention layer's keys and values, one row per clip, projected from the condition tokens.

    The tokens do not change during sampling, so the sequence UNet projects them once per batch
    (`DecoupledCrossAttnProcessor.project`). ``image_rows`` spans every clip whose image-prior tokens are
    not the null (all zero): outside it the image branch is exactly zero (bias-free K/V give zero values),
    so it is neither projected nor attended there; ``image`` holds those rows only.
    """

    text: tuple[torch.Tensor, torch.Tensor] | None
    image: tuple[torch.Tensor, torch.Tensor] | None
    image_rows: slice


def rows_with_image_prior(tokens: torch.Tensor) -> slice:
    """The smallest slice of rows of ``tokens`` (B, N, D) that holds every row that is not all zero.

    Under guidance the unconditional half carries the null image prior, so its image branch is skipped.
    Reads one flag per row back from the device: call it once per batch, not per denoising step.
    """
    given = tokens.flatten(1).any(dim=1).nonzero().flatten().tolist()
    return slice(given[0], given[-1] + 1) if given else slice(0, 0)


@dataclass(frozen=True)
class FrameContext:
    """What frame-aware processors need about the clip: frames folded into the batch as (b f).

    ``cross_keys`` maps each cross-attention layer (`DecoupledCrossAttnProcessor.layer`) to its
    keys/values, projected once per batch; without it the processors project the tokens they are given.
    """

    num_frames: int
    pathways: PathwayIndex | None
    cross_keys: Mapping[str, CrossAttentionKeys] | None = None


def _heads(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, heads*dim) -> (batch, heads, tokens, dim)."""
    batch, tokens, inner = x.shape
    return x.view(batch, tokens, attn.heads, inner // attn.heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, tokens, dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * dim)


def _attend(
    attn: Attention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    out = F.scaled_dot_product_attention(
        _heads(attn, query), _heads(attn, key), _heads(attn, value), attn_mask=mask
    )
    return _merge_heads(out).to(query.dtype)


def _output(attn: Attention, hidden_states: torch.Tensor) -> torch.Tensor:
    return attn.to_out[1](attn.to_out[0](hidden_states))


def check_plain_attention(attn: Attention) -> None:
    """Our processors implement the Stable-Diffusion transformer-block attention only."""
    unsupported = {
        "group_norm": attn.group_norm is not None,
        "spatial_norm": attn.spatial_norm is not None,
        "norm_q": attn.norm_q is not None,
        "norm_k": attn.norm_k is not None,
        "residual_connection": attn.residual_connection,
        "rescale_output_factor": attn.rescale_output_factor != 1.0,
    }
    used = [name for name, present in unsupported.items() if present]
    if used:
        raise ValueError(f"attention layer uses features these processors do not implement: {used}")


class SpatialSelfAttnProcessor(AttnProcessor2_0):
    """Per-frame spatial self-attention (diffusers' SDPA processor) that accepts our extra kwargs."""

    def __call__(  # type: ignore[override]
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        image_prior_tokens: torch.Tensor | None = None,
        frame_context: FrameContext | None = None,
    ) -> torch.Tensor:
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


class DecoupledCrossAttnProcessor(nn.Module):
    """Decoupled cross-attention (paper Eq. 2, IP-Adapter style).

    Each condition has its own projections, W^{Q_g}, W^{K_g}, W^{V_g} of Eq. 2 and an output projection (the
    authors' form): text through the layer's ``to_q``/``to_k``/``to_v``/``to_out``, the image prior through
    ``to_q_img``/``to_k_img``/``to_v_img``/``to_out_img``; the two outputs are summed. A missing branch
    contributes exactly zero: the image branch is bias-free (the text branch's ``to_out`` carries the bias),
    so all-zero image-prior tokens (the dropped condition) give exactly zero, like no tokens.
    With ``image_branch=False`` the layer is text-only and refuses image tokens.
    In the sequence UNet (``frame_context`` given) every frame carries its clip's tokens: the attention
    runs once per clip over all its frames' queries (`per_clip`), with keys/values projected once per clip
    (and, when ``frame_context.cross_keys`` holds this ``layer``, once per batch of denoising steps).
    """

    def __init__(
        self, hidden_size: int, cross_attention_dim: int, image_branch: bool = True, layer: str = ""
    ) -> None:
        super().__init__()
        self.image_branch = image_branch
        self.layer = layer
        if image_branch:
            self.to_q_img = nn.Linear(hidden_size, hidden_size, bias=False)
            self.to_k_img = nn.Linear(cross_attention_dim, hidden_size, bias=False)
            self.to_v_img = nn.Linear(cross_attention_dim, hidden_size, bias=False)
            self.to_out_img = nn.Linear(hidden_size, hidden_size, bias=False)

    def project(
        self,
        attn: Attention,
        text_tokens: torch.Tensor | None,
        image_prior_tokens: torch.Tensor | None,
        image_rows: slice = slice(None),
    ) -> CrossAttentionKeys:
        """Keys/values of per-clip tokens `(B, N, D)`; the image branch for ``image_rows`` only."""
        text = None
        if text_tokens is not None:
            if attn.norm_cross:
                text_tokens = attn.norm_encoder_hidden_states(text_tokens)
            text = (attn.to_k(text_tokens), attn.to_v(text_tokens))
        image = None
        if image_prior_tokens is not None:
            if not self.image_branch:
                raise ValueError("image_prior_tokens given to a UNet built without the image-prior branch")
            tokens = image_prior_tokens[image_rows].to(self.to_k_img.weight.dtype)
            if len(tokens):
                image = (self.to_k_img(tokens), self.to_v_img(tokens))
        return CrossAttentionKeys(text, image, image_rows)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        image_prior_tokens: torch.Tensor | None = None,
        frame_context: FrameContext | None = None,
    ) -> torch.Tensor:
        if hidden_states.ndim != 3:
            raise ValueError(
                f"hidden_states must be (batch, tokens, channels), got {tuple(hidden_states.shape)}"
            )
        frames = 1
        if frame_context is not None and attention_mask is None:
            frames = frame_context.num_frames
        clip_states = per_clip(hidden_states, frames)
        query = attn.to_q(clip_states)
        if frame_context is not None and frame_context.cross_keys is not None:
            keys = frame_context.cross_keys[self.layer]
        else:
            keys = self.project(
                attn,
                None if encoder_hidden_states is None else encoder_hidden_states[::frames],
                None if image_prior_tokens is None else image_prior_tokens[::frames],
            )
        out = torch.zeros_like(query)
        if keys.text is not None:
            mask = None
            if attention_mask is not None:
                length = keys.text[0].shape[1]
                mask = attn.prepare_attention_mask(attention_mask, length, len(query))
                mask = mask.view(len(query), attn.heads, -1, mask.shape[-1])
            out = _output(attn, _attend(attn, query, *keys.text, mask))
        if keys.image is not None:
            rows = keys.image_rows
            image_query = self.to_q_img(clip_states[rows])
            out[rows] = out[rows] + self.to_out_img(_attend(attn, image_query, *keys.image))
        return per_frame(out, frames)


def per_clip(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(b*f, tokens, channels) with frames folded as (b f) -> (b, f*tokens, channels), a view.

    The sequence UNet gives every frame of a clip the clip's condition tokens, so a cross-attention
    can run once per clip over all its frames' queries: keys/values are projected once, not f times.
    """
    if num_frames == 1:
        return x
    batch_frames, tokens, channels = x.shape
    return x.reshape(batch_frames // num_frames, num_frames * tokens, channels)


def per_frame(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Inverse of `per_clip`."""
    if num_frames == 1:
        return x
    batch, clip_tokens, channels = x.shape
    return x.reshape(batch * num_frames, clip_tokens // num_frames, channels)


def key_frame_keys(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Eq. (3) keys/values: frame l gets [frame 1 || frame l-1]; frame 1 gets [frame 1 || frame 1].

    ``x`` is (b*f, tokens, channels) with frames folded as (b f); returns (b*f, 2*tokens, channels).
    """
    batch_frames, tokens, channels = x.shape
    clip = x.view(batch_frames // num_frames, num_frames, tokens, channels)
    previous = torch.clamp(torch.arange(num_frames, device=x.device) - 1, min=0)
    first = clip[:, :1].expand(-1, num_frames, -1, -1)
    return torch.cat([first, clip[:, previous]], dim=2).reshape(batch_frames, 2 * tokens, channels)


def pathway_attention(
    attn: Attention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, index: PathwayIndex
) -> torch.Tensor:
    """Eqs. (4)-(5): each token attends to the tokens on its pathway, itself included.

    Inputs are (b*f, tokens, channels) with frames folded as (b f); output has the same layout.
    """
    batch_frames, tokens, channels = query.shape
    frames = index.num_frames
    batch = batch_frames // frames
    if index.scatter.shape != (batch, frames * tokens):
        raise ValueError(
            f"pathways index {tuple(index.scatter.shape)} does not match "
            f"{batch} clips of {frames} x {tokens} tokens"
        )

    def along_pathways(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(batch, frames * tokens, channels)
        picked = flat.gather(1, index.gather[..., None].expand(-1, -1, channels))
        return picked.reshape(batch * index.num_pathways, frames, channels)

    out = _attend(attn, along_pathways(query), along_pathways(key), along_pathways(value), index.key_mask)
    out = out.reshape(batch, index.num_pathways * frames, channels)
    out = out.gather(1, index.scatter[..., None].expand(-1, -1, channels))
    return out.reshape(batch_frames, tokens, channels)


class SequenceSelfAttnProcessor(nn.Module):
    """Stage-2 replacement of spatial self-attention (paper §3.4, sequential augmentation module).

    ``key_frame``: key-frame attention (Eq. 3), same projections as the 2D self-attention; otherwise
    plain per-frame self-attention. ``motion_field_attention`` (installed at the full latent resolution
    only): then motion-field attention (Eqs. 4-5) along ``frame_context.pathways`` on KA's attention
    output itself, before ``to_out`` and without query/key/value projections (Q = K = V = KA's output, as
    §3.4 says); skipped when the model runs without MFA. MFA enters through ``mfa_gate`` (one scalar per
    layer): to_out(lerp(KA, MFA(KA), gate)). Gate 1 is the paper's (and FLATTEN's) form; gate 0 makes
    the inflated model start equal to the image model (``SequenceUNetConfig.mfa_gate_init``).
    """

    def __init__(self, key_frame: bool, motion_field_attention: bool, mfa_gate_init: float = 0.0) -> None:
        super().__init__()
        self.key_frame = key_frame
        self.motion_field_attention = motion_field_attention
        if motion_field_attention:
            self.mfa_gate = nn.Parameter(torch.tensor(float(mfa_gate_init)))

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        image_prior_tokens: torch.Tensor | None = None,
        frame_context: FrameContext | None = None,
    ) -> torch.Tensor:
        if frame_context is None:
            raise ValueError("frame_context is required by the sequence UNet's self-attention")
        if attention_mask is not None:
            raise ValueError("attention_mask is not supported by key-frame / motion-field attention")
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        if self.key_frame:
            key = key_frame_keys(key, frame_context.num_frames)
            value = key_frame_keys(value, frame_context.num_frames)
        attended = _attend(attn, attn.to_q(hidden_states), key, value)
        if self.motion_field_attention and frame_context.pathways is not None:
            # §3.4: "the output of KA is directly fed into MFA without ... projection functions" (Eq. 4)
            along = pathway_attention(attn, attended, attended, attended, frame_context.pathways)
            attended = torch.lerp(attended, along, self.mfa_gate.to(attended.dtype))
        return _output(attn, attended)
