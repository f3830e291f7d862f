"""CLIP text condition (paper §3.3 "Descriptive Text"): open_clip CLIP, per-token states into cross-attention.

The whole CLIP (text and image towers) is kept so that it can be fine-tuned contrastively on the dataset's
(frame, text) pairs before the generator uses its text side. Grayscale frames reach the image tower through
open_clip's own eval transform: the PIL "L" image is converted to RGB (the gray value repeated on three
channels), resized and cropped, then normalised with the model's CLIP mean/std.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

CONFIG_NAME = "text_encoder_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which open_clip CLIP to build.

    `architecture` is an open_clip built-in model name; `model_overrides` replaces top-level entries of its
    config (`embed_dim`, `vision_cfg`, `text_cfg`, ...), as open_clip's `create_model(**model_kwargs)` does.
    `checkpoint_path` is a local open_clip checkpoint (.safetensors/.pt/.bin), loaded with open_clip's loader.
    The default, ViT-L-14, has the 768-wide text tower that Stable Diffusion 1.x cross-attends to.
    """

    architecture: str = "ViT-L-14"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    context_length: int = 77
    checkpoint_path: str | None = None

    def __post_init__(self) -> None:
        base = open_clip.get_model_config(self.architecture)
        if base is None:
            raise ValueError(f"architecture {self.architecture!r} is not an open_clip built-in model")
        text_cfg = self.model_overrides.get("text_cfg", base["text_cfg"])
        if "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg:
            raise ValueError(
                f"architecture {self.architecture!r} uses a Hugging Face text tower and tokenizer; "
                "choose one with open_clip's own text transformer and tokenizer"
            )
        if self.context_length < 2:
            raise ValueError(f"context_length must be >= 2, got {self.context_length}")
        if self.checkpoint_path is not None and not Path(self.checkpoint_path).is_file():
            raise FileNotFoundError(f"checkpoint_path {self.checkpoint_path} is not a file")

    @classmethod
    def tiny(cls) -> TextEncoderConfig:
        """A 2-layer, 32-wide text tower and a 1-layer 32-pixel ViT, for tests."""
        return cls(
            architecture="ViT-B-32",
            model_overrides={
                "embed_dim": 16,
                "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
            },
        )


@lru_cache(maxsize=8)
def _tokenizer(architecture: str, context_length: int) -> Callable[..., torch.Tensor]:
    return open_clip.get_tokenizer(architecture, context_length=context_length)


def build_clip(cfg: TextEncoderConfig) -> open_clip.CLIP | open_clip.CustomTextCLIP:
    """The open_clip model, never downloading: the local checkpoint when one is given (open_clip loads it, so
    it does not warn that the model is initialised randomly), else random init."""
    clip = open_clip.create_model(
        cfg.architecture,
        pretrained=cfg.checkpoint_path,
        pretrained_image=False,
        pretrained_text=False,
        force_context_length=cfg.context_length,
        **cfg.model_overrides,
    )
    if not isinstance(clip, open_clip.CLIP | open_clip.CustomTextCLIP):
        raise ValueError(
            f"architecture {cfg.architecture!r} is not a contrastive CLIP ({type(clip).__name__})"
        )
    return clip


class CLIPTextConditioner(nn.Module):
    """Tokenizes descriptive texts and returns CLIP's per-token hidden states `(B, L, D)`."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.clip = build_clip(cfg)
        preprocess = open_clip.get_model_preprocess_cfg(self.clip)
        self._image_transform = open_clip.image_transform(
            preprocess["size"],
            is_train=False,
            mean=preprocess["mean"],
            std=preprocess["std"],
            resize_mode=preprocess["resize_mode"],
            interpolation=preprocess["interpolation"],
            fill_color=preprocess["fill_color"],
        )

    @property
    def _text_tower(self) -> Any:
        return self.clip.text if isinstance(self.clip, open_clip.CustomTextCLIP) else self.clip

    @property
    def width(self) -> int:
        """D, the size of each token state (the UNet's `cross_attention_dim`)."""
        return int(self._text_tower.transformer.width)

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """open_clip BPE token ids `(B, context_length)`; the vocabulary ships inside the open_clip wheel."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        return _tokenizer(self.config.architecture, self.config.context_length)(list(texts))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token embedding + positions -> transformer -> ln_final, per token (what SD cross-attends to)."""
        tokens = tokens.to(next(self.clip.parameters()).device)
        if isinstance(self.clip, open_clip.CustomTextCLIP):
            out = self.clip.text.forward_intermediates(
                tokens, indices=1, normalize_intermediates=True, intermediates_only=True
            )
        else:
            out = self.clip.forward_intermediates(
                text=tokens, text_indices=1, normalize_intermediates=True, intermediates_only=True
            )
        return out["text_intermediates"][-1]

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Pooled, projected text features `(B, embed_dim)` for the contrastive loss."""
        return self.clip.encode_text(tokens, normalize=normalize)

    def preprocess_frames(self, frames: np.ndarray) -> torch.Tensor:
        """Grayscale uint8 frames `(B, H, W)` -> the image tower's input `(B, 3, S, S)`."""
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 3:
            raise ValueError(f"frames must be uint8 (B, H, W), got {frames.dtype} {frames.shape}")
        return torch.stack([self._image_transform(Image.fromarray(frame)) for frame in frames])

    def encode_image(self, frames: np.ndarray, normalize: bool = False) -> torch.Tensor:
        """Pooled, projected image features `(B, embed_dim)` of grayscale uint8 frames `(B, H, W)`."""
        pixels = self.preprocess_frames(frames).to(next(self.clip.parameters()).device)
        return self.clip.encode_image(pixels, normalize=normalize)

    def save_pretrained(self, directory: str | Path) -> None:
        """`text_encoder_config.json` + `open_clip_model.safetensors` (the whole CLIP's state dict)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = asdict(replace(self.config, checkpoint_path=None))
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True))
        state = {name: tensor.detach().contiguous().cpu() for name, tensor in self.clip.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> CLIPTextConditioner:
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} not found: not a saved text encoder directory")
        fields = json.loads(config_path.read_text())
        return cls(TextEncoderConfig(**{**fields, "checkpoint_path": str(directory / WEIGHTS_NAME)}))
