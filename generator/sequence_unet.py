"""Stage-2 sequence UNet (paper §3.2 "2D-to-3D Model Inflation", §3.3 motion field, §3.4 SAM).

The image UNet runs on every frame (frames folded into the batch, so a 3x3 conv is a 1x3x3 conv);
each spatial transformer is followed by sequential attention (SA) across frames; its self-attention
becomes key-frame attention (KA) followed by motion-field attention (MFA); motion features are
concatenated to the noisy latents. New parts start as identities: SA's output projection, MFA's
gate and conv_in's motion weights are zero, KA reuses the self-attention weights.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn

from generator.attention import (
    DecoupledCrossAttnProcessor,
    FrameContext,
    SequenceSelfAttnProcessor,
    SpatialSelfAttnProcessor,
    check_plain_attention,
    rows_with_image_prior,
)
from generator.config import SequenceUNetConfig, config_from_values
from generator.image_unet import (
    ImageUNet,
    check_text_tokens,
    check_tokens,
    has_image_branch,
    install_cross_attention,
    resolve_class_labels,
    set_processor,
)
from generator.motion_encoder import MotionConcatConvIn, MotionEncoder
from generator.pathways import PathwayIndex, straight_pathways
from generator.sequential_attention import SequentialAttention, sequential_attention

# Parameters of the inflated `unet` that a 2D checkpoint lacks: SA, MFA gates, conv_in's motion weights.
_NEW_PARAMETER = re.compile(r"\.sequential\.|\.processor\.mfa_gate$|^conv_in\.motion_weight$")
_SPATIAL_TRANSFORMER = re.compile(r"^((?:down_blocks|up_blocks)\.\d+|mid_block)\.attentions\.(\d+)\.")


@dataclass(frozen=True)
class SequenceConditions:
    """A batch's conditions as the inflated UNet's layers take them (`SequenceUNet.prepare_conditions`).

    Everything here depends on the conditions alone, so sampling computes it once and reuses it at every
    denoising step: per-frame class labels, conv_in's motion term (B*F, C, h, w) and the frame context
    (MFA pathway index, cross-attention keys/values). ``shape`` is the (B, F, h, w) it was prepared for.
    """

    shape: tuple[int, int, int, int]
    class_labels: torch.Tensor | None
    motion_term: torch.Tensor | None
    context: FrameContext


class SpatioSequentialTransformer(nn.Module):
    """A spatial transformer run per frame, then sequential attention across frames (when enabled).

    Called by diffusers' UNet blocks exactly like the `Transformer2DModel` it wraps; the number of
    frames comes from ``cross_attention_kwargs["frame_context"]``.
    """

    _gradient_checkpointing_func: Callable[..., Any]  # set by ModelMixin.enable_gradient_checkpointing

    def __init__(
        self, spatial: Transformer2DModel, sequential: SequentialAttention | TransformerTemporalModel | None
    ) -> None:
        super().__init__()
        self.spatial = spatial
        self.sequential = sequential
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> Transformer2DModelOutput | tuple[torch.Tensor]:
        hidden_states = self.spatial(
            hidden_states,
            encoder_hidden_states=encoder_hidden_states,
            cross_attention_kwargs=cross_attention_kwargs,
            attention_mask=attention_mask,
            encoder_attention_mask=encoder_attention_mask,
            return_dict=False,
        )[0]
        if self.sequential is not None:
            context: FrameContext = (cross_attention_kwargs or {})["frame_context"]
            sequential = functools.partial(self.sequential, num_frames=context.num_frames, return_dict=False)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                hidden_states = self._gradient_checkpointing_func(sequential, hidden_states)[0]
            else:
                hidden_states = sequential(hidden_states)[0]
        return Transformer2DModelOutput(sample=hidden_states) if return_dict else (hidden_states,)


class SequenceUNet(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """The inflated UNet. Build it from a stage-1 model with `from_image_unet`; `save_pretrained` /
    `from_pretrained` store the 2D UNet's config (``unet_config``) and the `SequenceUNetConfig` fields."""

    _supports_gradient_checkpointing = True
    unet: UNet2DConditionModel

    @register_to_config
    def __init__(
        self,
        unet_config: dict[str, Any],
        use_sa: bool = True,
        use_ka: bool = True,
        use_mfa: bool = True,
        use_motion: bool = True,
        use_text: bool = True,
        use_image_prior: bool = True,
        use_class: bool = True,
        sa_num_layers: int = 1,
        motion_embedding_channels: int = 320,
        motion_block_out_channels: tuple[int, ...] = (16, 32, 96, 256),
        motion_scale_px: float = 8.0,
        sequential_attention: str = "transformer",  # configs saved before the setting existed; see config.py
        mfa_gate_init: float = 0.0,
    ) -> None:
        super().__init__()
        settings = self.settings
        if use_class != (unet_config.get("num_class_embeds") is not None):
            raise ValueError("unet_config.num_class_embeds must be set exactly when use_class=True")
        self.unet = UNet2DConditionModel(**unet_config)
        self._install_attention(settings)
        self.motion_encoder: MotionEncoder | None = None
        if use_motion:
            self.motion_encoder = MotionEncoder(
                motion_embedding_channels, settings.motion_block_out_channels, motion_scale_px
            )
            self.unet.conv_in = MotionConcatConvIn(self.unet.conv_in, motion_embedding_channels)

    @property
    def settings(self) -> SequenceUNetConfig:
        return config_from_values(SequenceUNetConfig, self.config)

    def _install_attention(self, settings: SequenceUNetConfig) -> None:
        # MFA runs at the full latent resolution only: the first down block and the last up block.
        full_resolution = ("down_blocks.0.", f"up_blocks.{len(self.unet.up_blocks) - 1}.")
        for name, module in list(self.unet.named_modules()):
            if not isinstance(module, Transformer2DModel):
                continue
            mfa = settings.use_mfa and name.startswith(full_resolution)
            for block in module.transformer_blocks:
                check_plain_attention(block.attn1)
                if settings.use_ka or mfa:
                    set_processor(
                        block.attn1,
                        SequenceSelfAttnProcessor(settings.use_ka, mfa, settings.mfa_gate_init),
                    )
                else:
                    set_processor(block.attn1, SpatialSelfAttnProcessor())
            sequential = (
                sequential_attention(
                    module,
                    settings.sequential_attention,
                    settings.sa_num_layers,
                    self.unet.config["norm_num_groups"],
                )
                if settings.use_sa
                else None
            )
            parent_name, index = name.rsplit(".", 1)
            siblings = self.unet.get_submodule(parent_name)
            assert isinstance(siblings, nn.ModuleList)
            siblings[int(index)] = SpatioSequentialTransformer(module, sequential)
        install_cross_attention(self.unet, image_branch=settings.use_image_prior)

    def spatio_sequential_transformers(self) -> list[SpatioSequentialTransformer]:
        return [m for m in self.unet.modules() if isinstance(m, SpatioSequentialTransformer)]

    @classmethod
    def from_image_unet(
        cls, image_unet: UNet2DConditionModel | ImageUNet, cfg: SequenceUNetConfig
    ) -> SequenceUNet:
        """Inflate a stage-1 UNet: copy all its weights, add SA / KA / MFA / motion as identities."""
        unet2d = image_unet.unet if isinstance(image_unet, ImageUNet) else image_unet
        if not isinstance(unet2d, UNet2DConditionModel):
            raise TypeError(
                f"image_unet must be an ImageUNet or UNet2DConditionModel, got {type(image_unet)}"
            )
        if cfg.use_image_prior and not has_image_branch(unet2d):
            raise ValueError("use_image_prior=True but the image UNet has no image-prior branch")
        if cfg.use_class and unet2d.config["num_class_embeds"] is None:
            raise ValueError("use_class=True but the image UNet has no class embedding")
        unet_config = {k: v for k, v in unet2d.config.items() if not k.startswith("_")}
        if not cfg.use_class:
            unet_config["num_class_embeds"] = None
        model = cls(unet_config=unet_config, **asdict(cfg))
        model.load_image_unet_weights(unet2d)
        model.to(unet2d.device)
        return model if model.dtype == unet2d.dtype else model.to(unet2d.dtype)

    def load_image_unet_weights(self, unet2d: UNet2DConditionModel) -> None:
        """Load every 2D weight into its inflated place; only the new stage-2 parameters stay as built."""
        settings = self.settings
        state = {}
        for key, value in unet2d.state_dict().items():
            if key.startswith("class_embedding.") and not settings.use_class:
                continue
            if re.search(r"\.processor\.to_(q|k|v|out)_img\.", key) and not settings.use_image_prior:
                continue
            state[_SPATIAL_TRANSFORMER.sub(r"\1.attentions.\2.spatial.", key, count=1)] = value
        missing, unexpected = self.unet.load_state_dict(state, strict=False)
        not_new = [k for k in missing if not _NEW_PARAMETER.search(k)]
        if unexpected or not_new:
            raise ValueError(
                f"image UNet does not match the inflated UNet: missing {not_new}, unexpected {unexpected}"
            )

    def trainable_parameters_stage2(self) -> list[nn.Parameter]:
        """Stage-2 trainables (§4.1): SA, KA/MFA (attn1 projections + MFA gates), the motion encoder with
        conv_in's motion weights, and the query projections of the cross-attentions. The rest is frozen."""
        settings = self.settings
        params: list[nn.Parameter] = []
        for transformer in self.spatio_sequential_transformers():
            if transformer.sequential is not None:
                params += transformer.sequential.parameters()
            for block in transformer.spatial.transformer_blocks:
                if isinstance(block.attn1.processor, SequenceSelfAttnProcessor):
                    for projection in (
                        block.attn1.to_q,
                        block.attn1.to_k,
                        block.attn1.to_v,
                        block.attn1.to_out,
                    ):
                        params += projection.parameters()
                    params += block.attn1.processor.parameters()
                if settings.use_text:
                    params += block.attn2.to_q.parameters()
                if settings.use_image_prior:
                    params += block.attn2.processor.to_q_img.parameters()
        if self.motion_encoder is not None:
            assert isinstance(self.unet.conv_in, MotionConcatConvIn)
            params += self.motion_encoder.parameters()
            params.append(self.unet.conv_in.motion_weight)
        return params

    def freeze_for_stage2(self) -> list[nn.Parameter]:
        """Set requires_grad on exactly the stage-2 trainables; returns them (for the optimiser)."""
        self.requires_grad_(False)
        trainable = self.trainable_parameters_stage2()
        for param in trainable:
            param.requires_grad_(True)
        return trainable

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | int,
        text_tokens: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        image_prior_tokens: torch.Tensor | None = None,
        motion_field: torch.Tensor | None = None,
        pathways: torch.Tensor | list[torch.Tensor | None] | None = None,
        conditions: SequenceConditions | None = None,
    ) -> torch.Tensor:
        """Predict noise for a batch of clips.

        sample (B, 4, F, h, w); timestep scalar or (B,); text_tokens (B, L, D) (required unless
        use_text=False; the null text is the encoder's output for ""); class_labels (B,) long, None =
        null class; image_prior_tokens (B, N, D) from the first frame, serving every frame, None = no
        image prior; motion_field (B, F, 2, H, W) pixels with H = h * 8, None = zero motion; pathways
        from `sample_pathways` per clip, as a (B, P, F) tensor or a list of (P_i, F) tensors / None,
        None = straight pathways (the null motion). Or, instead of those five, ``conditions`` from
        `prepare_conditions`, reused across denoising steps. Returns (B, 4, F, h, w).
        """
        if sample.ndim != 5:
            raise ValueError(f"sample must have shape (B, C, F, h, w), got {tuple(sample.shape)}")
        batch, channels, frames, h, w = sample.shape
        if conditions is None:
            conditions = self.prepare_conditions(
                batch,
                frames,
                h,
                w,
                sample.device,
                text_tokens,
                class_labels,
                image_prior_tokens,
                motion_field,
                pathways,
            )
        elif any(
            x is not None for x in (text_tokens, class_labels, image_prior_tokens, motion_field, pathways)
        ):
            raise ValueError("give either the conditions themselves or prepared `conditions`, not both")
        elif conditions.shape != (batch, frames, h, w):
            raise ValueError(
                f"prepared conditions are for (B, F, h, w) = {conditions.shape}, "
                f"the sample is {(batch, frames, h, w)}"
            )
        latents = sample.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, h, w)
        if conditions.motion_term is not None:
            latents = torch.cat([latents, conditions.motion_term.to(latents.dtype)], dim=1)
        timestep = torch.as_tensor(timestep, device=sample.device)
        if timestep.ndim == 1:
            if timestep.shape[0] != batch:
                raise ValueError(
                    f"timestep must be a scalar or have shape ({batch},), got {tuple(timestep.shape)}"
                )
            timestep = timestep.repeat_interleave(frames)
        out = self.unet(
            latents,
            timestep,
            encoder_hidden_states=None,  # the cross-attentions take their keys from the frame context
            class_labels=conditions.class_labels,
            cross_attention_kwargs={"frame_context": conditions.context},
        ).sample
        return out.reshape(batch, frames, -1, h, w).permute(0, 2, 1, 3, 4)

    def prepare_conditions(
        self,
        batch: int,
        frames: int,
        h: int,
        w: int,
        device: torch.device,
        text_tokens: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        image_prior_tokens: torch.Tensor | None = None,
        motion_field: torch.Tensor | None = None,
        pathways: torch.Tensor | list[torch.Tensor | None] | None = None,
    ) -> SequenceConditions:
        """Validate a batch's conditions (as `forward` takes them) and compute what of the network depends
        on them alone: the motion encoder and conv_in's motion term, the MFA pathway index, the
        cross-attention keys/values. Sampling calls it once per batch, not at every denoising step."""
        settings = self.settings
        dim = self.unet.config["cross_attention_dim"]
        check_text_tokens(text_tokens, settings.use_text, batch, dim)
        check_tokens("image_prior_tokens", image_prior_tokens, batch, dim)
        labels = resolve_class_labels(self.unet, class_labels, batch, device)
        motion_term = None
        if self.motion_encoder is not None:
            assert isinstance(self.unet.conv_in, MotionConcatConvIn)
            motion_term = self.unet.conv_in.motion_term(
                self._motion_features(motion_field, batch, frames, h, w, device)
            )
        elif motion_field is not None:
            raise ValueError("motion_field given but the model was built with use_motion=False")
        image_rows = slice(None) if image_prior_tokens is None else rows_with_image_prior(image_prior_tokens)
        cross_keys = {
            processor.layer: processor.project(attn, text_tokens, image_prior_tokens, image_rows)
            for attn, processor in self._cross_attention_layers()
        }
        context = FrameContext(
            num_frames=frames,
            pathways=self._pathway_index(pathways, batch, frames, h, w, device),
            cross_keys=cross_keys,
        )
        return SequenceConditions(
            shape=(batch, frames, h, w),
            class_labels=None if labels is None else labels.repeat_interleave(frames),
            motion_term=motion_term,
            context=context,
        )

    def _cross_attention_layers(self) -> list[tuple[Attention, DecoupledCrossAttnProcessor]]:
        layers = []
        for transformer in self.spatio_sequential_transformers():
            for block in transformer.spatial.transformer_blocks:
                assert isinstance(block.attn2.processor, DecoupledCrossAttnProcessor)
                layers.append((block.attn2, block.attn2.processor))
        return layers

    def _motion_features(
        self,
        motion_field: torch.Tensor | None,
        batch: int,
        frames: int,
        h: int,
        w: int,
        device: torch.device,
    ) -> torch.Tensor:
        """Motion-encoder features (B*F, k, h, w); a missing field is zero motion."""
        assert self.motion_encoder is not None
        scale = self.motion_encoder.downsampling
        shape = (batch, frames, 2, h * scale, w * scale)
        if motion_field is None:
            motion_field = torch.zeros(shape, device=device, dtype=self.dtype)
        elif tuple(motion_field.shape) != shape:
            raise ValueError(f"motion_field must have shape {shape}, got {tuple(motion_field.shape)}")
        return self.motion_encoder(motion_field)

    def _pathway_index(
        self,
        pathways: torch.Tensor | list[torch.Tensor | None] | None,
        batch: int,
        frames: int,
        h: int,
        w: int,
        device: torch.device,
    ) -> PathwayIndex | None:
        if not self.settings.use_mfa:
            if pathways is not None:
                raise ValueError("pathways given but the model was built with use_mfa=False")
            return None
        if pathways is None:
            pathways = [straight_pathways(frames, h, w)] * batch
        if len(pathways) != batch:
            raise ValueError(f"pathways must hold one entry per clip ({batch}), got {len(pathways)}")
        return PathwayIndex.build(pathways, frames, h, w, device)
