"""A plain, seeded torch training loop for sequence classifiers (Table 1: cosine schedule,
batch 8, lr 1e-4; AdamW) and batched prediction."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from classify.augment import BatchMixer
from classify.preprocess import ClipNormalization, clips_to_tensor

ProgressFn = Callable[[int, int, float], None]  # (epoch, epochs, mean loss)


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 100
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.01
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def train_classifier(
    model: nn.Module,
    dataset: Dataset,
    settings: TrainSettings,
    num_classes: int,
    mixing: str = "none",
    mix_alpha: float = 1.0,
    progress: ProgressFn | None = None,
) -> list[float]:
    """Trains `model` in place; returns the mean training loss of every epoch."""
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("train_classifier: the training set is empty")
    generator = seed_everything(settings.seed)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=True, generator=generator)
    mixer = BatchMixer(mixing, num_classes, mix_alpha, seed=settings.seed) if mixing != "none" else None
    model.to(settings.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs * len(loader))
    history = []
    for epoch in range(settings.epochs):
        total, count = 0.0, 0
        for clips, labels in loader:
            clips, labels = clips.to(settings.device), labels.to(settings.device)
            targets: torch.Tensor = labels
            if mixer is not None:
                clips, targets = mixer(clips, labels)
            loss = F.cross_entropy(model(clips), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * labels.shape[0]
            count += labels.shape[0]
        history.append(total / count)
        if progress is not None:
            progress(epoch + 1, settings.epochs, history[-1])
    return history


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    clips: np.ndarray,
    normalization: ClipNormalization = ClipNormalization(),
    size: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
) -> np.ndarray:
    """Softmax class probabilities `(N, K)` for uint8 clips `(N, F, H, W)`."""
    model.to(device).eval()
    outputs = []
    for start in range(0, clips.shape[0], batch_size):
        batch = clips_to_tensor(clips[start : start + batch_size], normalization, size).to(device)
        outputs.append(torch.softmax(model(batch).float(), dim=1).cpu())
    return torch.cat(outputs).numpy()
