"""Training-time augmentation: the "standard practices" of Table 1 (random colour, move,
Gaussian noise, rotation, flip, resized crop), random elastic deformation, and the mixing
methods of Table 2 (Mixup, CutMix, VideoMix). Clip transforms draw one set of parameters
per clip, so every frame of a clip moves together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

MixingName = Literal["none", "mixup", "cutmix", "videomix", "videomix-temporal"]
MIXING_NAMES: tuple[str, ...] = ("none", "mixup", "cutmix", "videomix", "videomix-temporal")

# Table 2 comparison methods that need no generator, as (clip augmentation, batch mixing).
AUGMENTATION_METHODS: dict[str, tuple[bool, str]] = {
    "basic": (False, "none"),
    "elastic": (True, "none"),
    "mixup": (False, "mixup"),
    "cutmix": (False, "cutmix"),
    "videomix": (False, "videomix"),
    "videomix-temporal": (False, "videomix-temporal"),
}


@dataclass(frozen=True)
class AugmentSettings:
    basic: bool = True
    horizontal_flip: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)
    rotation_degrees: float = 10.0
    translate: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    noise_sigma: float = 0.02
    elastic: bool = False
    elastic_alpha: float = 30.0
    elastic_sigma: float = 5.0
    mixing: str = "none"
    mix_alpha: float = 1.0

    def __post_init__(self) -> None:
        if self.mixing not in MIXING_NAMES:
            raise ValueError(
                f"augment.mixing: unknown {self.mixing!r}; choose one of {', '.join(MIXING_NAMES)}"
            )
        if self.mix_alpha <= 0:
            raise ValueError(f"augment.mix_alpha must be positive, got {self.mix_alpha}")

    @classmethod
    def for_method(cls, method: str, **overrides: object) -> AugmentSettings:
        if method not in AUGMENTATION_METHODS:
            raise ValueError(
                f"augmentation: unknown method {method!r}; choose one of {', '.join(AUGMENTATION_METHODS)}"
            )
        elastic, mixing = AUGMENTATION_METHODS[method]
        return cls(**{"elastic": elastic, "mixing": mixing, **overrides})  # type: ignore[arg-type]


def build_clip_transform(settings: AugmentSettings, size: int) -> v2.Transform | None:
    """A transform of a `tv_tensors.Video` `(F, 1, H, W)` in [0, 1] (same output size)."""
    steps: list[v2.Transform] = []
    if settings.basic:
        steps.append(v2.RandomResizedCrop(size, scale=settings.crop_scale, antialias=True))
        if settings.horizontal_flip:
            steps.append(v2.RandomHorizontalFlip())
        steps.append(v2.RandomAffine(degrees=settings.rotation_degrees, translate=(settings.translate,) * 2))
        steps.append(v2.ColorJitter(brightness=settings.brightness, contrast=settings.contrast))
        if settings.noise_sigma > 0:
            steps.append(v2.GaussianNoise(sigma=settings.noise_sigma))
    if settings.elastic:
        steps.append(v2.ElasticTransform(alpha=settings.elastic_alpha, sigma=settings.elastic_sigma))
    return v2.Compose(steps) if steps else None


def augment_clip(transform: v2.Transform | None, unit_clip: torch.Tensor) -> torch.Tensor:
    """`(1, F, H, W)` in [0, 1] → transformed `(1, F, H, W)`."""
    if transform is None:
        return unit_clip
    video = tv_tensors.Video(unit_clip.permute(1, 0, 2, 3))
    return transform(video).as_subclass(torch.Tensor).permute(1, 0, 2, 3)


class BatchMixer:
    """Mixes a batch `(B, C, F, H, W)` with integer labels into soft targets `(B, K)`.

    mixup: torchvision MixUp. videomix: VideoMix's spatial variant, one box over all frames
    (torchvision CutMix on a video batch). cutmix: image CutMix per frame, each frame with its
    own box; the target mixes by the mean pasted area. videomix-temporal: a run of frames
    swapped between clips. Partners are the batch rolled by one, as in torchvision.
    """

    def __init__(self, mixing: str, num_classes: int, alpha: float = 1.0, seed: int = 0) -> None:
        if mixing not in MIXING_NAMES or mixing == "none":
            raise ValueError(f"mixing: expected one of {', '.join(MIXING_NAMES[1:])}, got {mixing!r}")
        self.mixing = mixing
        self.num_classes = num_classes
        self.alpha = alpha
        self.rng = np.random.default_rng(seed)
        self._mixup = v2.MixUp(num_classes=num_classes, alpha=alpha)
        self._cutmix = v2.CutMix(num_classes=num_classes, alpha=alpha)

    def __call__(self, batch: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.shape[0] < 2:
            return batch, torch.nn.functional.one_hot(labels, self.num_classes).float()
        if self.mixing == "videomix-temporal":
            return self._temporal(batch, labels)
        if self.mixing == "cutmix":
            return self._per_frame_cutmix(batch, labels)
        transform = self._mixup if self.mixing == "mixup" else self._cutmix
        video = tv_tensors.Video(batch.transpose(1, 2))
        mixed, targets = transform(video, labels)
        return mixed.as_subclass(torch.Tensor).transpose(1, 2).contiguous(), targets

    def _per_frame_cutmix(
        self, batch: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        frames, targets = [], []
        for index in range(batch.shape[2]):
            frame, target = self._cutmix(batch[:, :, index], labels)
            frames.append(frame)
            targets.append(target)
        return torch.stack(frames, dim=2), torch.stack(targets).mean(dim=0)

    def _temporal(self, batch: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        num_frames = batch.shape[2]
        lam = float(self.rng.beta(self.alpha, self.alpha))
        length = int(round((1.0 - lam) * num_frames))
        start = int(self.rng.integers(0, num_frames - length + 1))
        mixed = batch.clone()
        mixed[:, :, start : start + length] = batch.roll(1, dims=0)[:, :, start : start + length]
        kept = 1.0 - length / num_frames
        one_hot = torch.nn.functional.one_hot(labels, self.num_classes).float()
        return mixed, kept * one_hot + (1.0 - kept) * one_hot.roll(1, dims=0)
