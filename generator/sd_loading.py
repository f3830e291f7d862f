"""Initialise the pretraining LDM from a local Stable Diffusion 1.x diffusers folder (§4.1).

UNet: every SD weight is loaded into our image UNet; the class embedding (new) starts at zero and the image
branch of the decoupled cross-attention starts from the text branch's K/V (IP-Adapter's initialisation), so
the loaded model predicts exactly what SD predicts when no image prior is given.
VAE: SD's 3-channel KL autoencoder becomes a 1-channel one by an explicit, logged conversion of its first and
last convolutions. SD's transformers CLIP text encoder is not used (docs/decisions.md, "generator pipeline").
Nothing is downloaded: the folder must be on the local disk.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from generator.config import ImageUNetConfig
from generator.image_unet import ImageUNet, init_image_branch_from_text
from generator.vae import VAEConfig

logger = logging.getLogger(__name__)

# SD pipeline folders our loader reads, and the ones it leaves out on purpose.
IGNORED_COMPONENTS = ("text_encoder", "tokenizer", "safety_checker", "feature_extractor", "scheduler")


@dataclass(frozen=True)
class ConversionStep:
    """One weight that did not load one-to-one, and what was done with it."""

    parameter: str
    action: str


COMPONENT_CLASSES = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL"}


def component_dir(path: str | Path, component: str) -> Path:
    """`path/component` of an SD pipeline folder, or `path` itself when it is that component's folder."""
    root = Path(path)
    expected = COMPONENT_CLASSES[component]
    for candidate in (root / component, root):
        config_path = candidate / "config.json"
        if config_path.is_file() and json.loads(config_path.read_text()).get("_class_name") == expected:
            return candidate
    raise FileNotFoundError(
        f"{root}: no {component}/config.json of a diffusers {expected} (not a local Stable Diffusion folder)"
    )


def log_ignored_components(sd_dir: str | Path) -> list[str]:
    """SD components we do not load (the CLIP text side: docs/decisions.md); logged, never silent."""
    root = Path(sd_dir)
    ignored = [name for name in IGNORED_COMPONENTS if (root / name).is_dir()]
    for name in ignored:
        logger.info(
            "Stable Diffusion %s in %s is not loaded (Ctrl-GenAug uses its own open_clip text encoder)",
            name,
            root,
        )
    return ignored


def _mismatches(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    def norm(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    return [
        f"{key}: ours {norm(expected[key])!r}, SD {norm(found.get(key))!r}"
        for key in expected
        if norm(expected[key]) != norm(found.get(key))
    ]


# ----------------------------------------------------------------------------------------------- VAE


@torch.no_grad()
def grayscale_vae_from_rgb(rgb_vae: AutoencoderKL) -> tuple[AutoencoderKL, list[ConversionStep]]:
    """A 1-channel copy of a 3-channel `AutoencoderKL`.

    A gray image replicated on R, G, B goes through conv_in with its weights summed over the input channels
    (conv(x, x, x; W) = conv(x; W_r + W_g + W_b)); the decoder's gray output is the mean of its R, G, B
    outputs (conv_out weights and bias averaged over output channels). Everything else loads unchanged.
    """
    config = {key: value for key, value in rgb_vae.config.items() if not key.startswith("_")}
    if config["in_channels"] != 3 or config["out_channels"] != 3:
        raise ValueError(
            f"expected a 3-channel (RGB) VAE, got in_channels={config['in_channels']}, "
            f"out_channels={config['out_channels']}"
        )
    gray = AutoencoderKL.from_config({**config, "in_channels": 1, "out_channels": 1})
    state = rgb_vae.state_dict()
    steps = [
        ConversionStep("encoder.conv_in.weight", "summed over the 3 RGB input channels -> 1 input channel"),
        ConversionStep(
            "decoder.conv_out.weight", "averaged over the 3 RGB output channels -> 1 output channel"
        ),
        ConversionStep(
            "decoder.conv_out.bias", "averaged over the 3 RGB output channels -> 1 output channel"
        ),
    ]
    state["encoder.conv_in.weight"] = state["encoder.conv_in.weight"].sum(dim=1, keepdim=True)
    state["decoder.conv_out.weight"] = state["decoder.conv_out.weight"].mean(dim=0, keepdim=True)
    state["decoder.conv_out.bias"] = state["decoder.conv_out.bias"].mean(dim=0, keepdim=True)
    gray.load_state_dict(state, strict=True)
    for step in steps:
        logger.info("SD VAE -> 1-channel VAE: %s %s", step.parameter, step.action)
    return gray, steps


def load_sd_vae(sd_dir: str | Path, cfg: VAEConfig | None = None) -> AutoencoderKL:
    """The SD VAE of a local folder, converted to 1 channel; `cfg` (if given) must describe the same shape."""
    rgb = AutoencoderKL.from_pretrained(component_dir(sd_dir, "vae"), local_files_only=True)
    if cfg is not None:
        if cfg.in_channels != 1:
            raise ValueError(f"vae.in_channels must be 1 for an SD-initialised VAE, got {cfg.in_channels}")
        blocks = len(cfg.block_out_channels)
        expected = {
            "block_out_channels": tuple(cfg.block_out_channels),
            "layers_per_block": cfg.layers_per_block,
            "latent_channels": cfg.latent_channels,
            "norm_num_groups": cfg.norm_num_groups,
            "scaling_factor": cfg.scaling_factor,
            "down_block_types": ("DownEncoderBlock2D",) * blocks,
            "up_block_types": ("UpDecoderBlock2D",) * blocks,
        }
        different = _mismatches(expected, dict(rgb.config))
        if different:
            raise ValueError(f"vae config does not match the Stable Diffusion VAE: {different}")
    gray, _ = grayscale_vae_from_rgb(rgb)
    if cfg is not None:
        gray.register_to_config(sample_size=cfg.sample_size)
    return gray


# ---------------------------------------------------------------------------------------------- UNet


def image_unet_config_from_sd(sd_config: dict[str, Any], num_classes: int) -> ImageUNetConfig:
    """Our `ImageUNetConfig` with SD's shape (full model: class, text and image prior)."""
    if not isinstance(sd_config.get("attention_head_dim"), int):
        raise ValueError("only Stable Diffusion 1.x UNets (one integer attention_head_dim) are supported")
    return ImageUNetConfig(
        num_classes=num_classes,
        sample_size=sd_config["sample_size"],
        in_channels=sd_config["in_channels"],
        out_channels=sd_config["out_channels"],
        block_out_channels=tuple(sd_config["block_out_channels"]),
        down_block_types=tuple(sd_config["down_block_types"]),
        up_block_types=tuple(sd_config["up_block_types"]),
        layers_per_block=sd_config["layers_per_block"],
        attention_head_dim=sd_config["attention_head_dim"],
        norm_num_groups=sd_config["norm_num_groups"],
        cross_attention_dim=sd_config["cross_attention_dim"],
    )


def _check_same_architecture(ours: UNet2DConditionModel, sd: UNet2DConditionModel) -> None:
    """Every SD config entry but `sample_size` (a default only) must be what our UNet was built with."""
    ours_config = {k: v for k, v in ours.config.items() if not k.startswith("_")}
    skip = {"sample_size", "num_class_embeds"}
    expected = {key: value for key, value in ours_config.items() if key not in skip}
    different = _mismatches(expected, dict(sd.config))
    if sd.config.get("num_class_embeds") is not None or sd.config.get("class_embed_type") is not None:
        different.append("SD UNet already has a class embedding")
    if different:
        raise ValueError(f"unet config does not match the Stable Diffusion UNet: {different}")


@torch.no_grad()
def image_unet_from_sd(
    sd_unet: UNet2DConditionModel, cfg: ImageUNetConfig
) -> tuple[ImageUNet, list[ConversionStep]]:
    """Our image UNet (`cfg`) holding every SD UNet weight; new parameters initialised and reported."""
    image_unet = ImageUNet.build(cfg)
    unet = image_unet.unet
    _check_same_architecture(unet, sd_unet)
    missing, unexpected = unet.load_state_dict(sd_unet.state_dict(), strict=False)
    new = {"class_embedding.weight"} if cfg.use_class else set()
    image_branch = sorted(
        k for k in missing if re.search(r"\.processor\.to_(q|k|v|out)_img\.", k)
    )
    not_loaded = sorted(set(missing) - new - set(image_branch))
    if unexpected or not_loaded or not new <= set(missing):
        raise ValueError(
            f"Stable Diffusion UNet weights do not fit: missing {not_loaded}, unexpected {unexpected}"
        )
    steps: list[ConversionStep] = []
    if cfg.use_class:
        # Zero rows: the class label adds nothing to the timestep embedding until trained, so the loaded
        # model starts as SD; the rows still get gradients (they are added, not multiplied).
        torch.nn.init.zeros_(unet.class_embedding.weight)
        rows = unet.class_embedding.weight.shape[0]
        steps.append(
            ConversionStep("class_embedding.weight", f"new, {rows} rows ({rows - 1} classes + null), zeros")
        )
    if cfg.use_image_prior:
        init_image_branch_from_text(unet)
        steps.append(
            ConversionStep(
                f"attn2.processor.to_{{q,k,v,out}}_img of {len(image_branch) // 4} cross-attention layers",
                "copied from attn2.to_q / to_k / to_v / to_out.0 (weights)",
            )
        )
    for step in steps:
        logger.info("SD UNet -> image UNet: %s %s", step.parameter, step.action)
    return image_unet, steps


def load_sd_image_unet(sd_dir: str | Path, cfg: ImageUNetConfig) -> ImageUNet:
    """Stage-1 image UNet initialised from a local SD folder's UNet (§4.1); `cfg` must match its shape."""
    log_ignored_components(sd_dir)
    sd_unet = UNet2DConditionModel.from_pretrained(component_dir(sd_dir, "unet"), local_files_only=True)
    image_unet, _ = image_unet_from_sd(sd_unet, cfg)
    return image_unet


def sd_image_unet_config(sd_dir: str | Path, num_classes: int) -> ImageUNetConfig:
    """The `ImageUNetConfig` of a local SD folder's UNet, for `num_classes` classes."""
    config = UNet2DConditionModel.load_config(component_dir(sd_dir, "unet"))
    return image_unet_config_from_sd(dict(config), num_classes)
