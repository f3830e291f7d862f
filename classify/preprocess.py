"""uint8 clips → classifier input: `(x / 255 - mean) / std`, shape `(N, 1, F, H, W)`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ClipNormalization:
    # Kinetics grey level statistics (pytorchvideo/torchvision video models use 0.45 / 0.225).
    mean: float = 0.45
    std: float = 0.225

    def __post_init__(self) -> None:
        if self.std <= 0:
            raise ValueError(f"normalization.std must be positive, got {self.std}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def check_clips(clips: np.ndarray, name: str = "clips") -> np.ndarray:
    if not isinstance(clips, np.ndarray) or clips.dtype != np.uint8 or clips.ndim != 4:
        shape = getattr(clips, "shape", None)
        dtype = getattr(clips, "dtype", type(clips).__name__)
        raise ValueError(f"{name}: expected uint8 array (N, F, H, W), got {dtype} {shape}")
    return clips


def resize_frames(video: torch.Tensor, size: int | None) -> torch.Tensor:
    """Bilinear resize of `(..., H, W)` to `size`×`size` (no-op when it already is)."""
    if size is None or video.shape[-2:] == (size, size):
        return video
    lead = video.shape[:-2]
    flat = video.reshape(-1, 1, *video.shape[-2:])
    resized = F.interpolate(flat, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.reshape(*lead, size, size)


def clips_to_unit_tensor(clips: np.ndarray, size: int | None = None) -> torch.Tensor:
    """uint8 `(N, F, H, W)` → float `(N, 1, F, size, size)` in [0, 1]."""
    clips = check_clips(clips)
    video = torch.from_numpy(clips).float().div_(255.0).unsqueeze(1)
    return resize_frames(video, size)


def normalize(unit: torch.Tensor, normalization: ClipNormalization) -> torch.Tensor:
    return (unit - normalization.mean) / normalization.std


def clips_to_tensor(
    clips: np.ndarray, normalization: ClipNormalization = ClipNormalization(), size: int | None = None
) -> torch.Tensor:
    """The classifier input for uint8 clips `(N, F, H, W)`: float `(N, 1, F, H', W')`."""
    return normalize(clips_to_unit_tensor(clips, size), normalization)
