"""The real-data classifier that judges generated clips: trained here on the data build's training clips
only, or loaded from a classify/ checkpoint folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from classify.augment import AugmentSettings, build_clip_transform
from classify.checkpoint import load_classifier
from classify.data import ClipDataset
from classify.preprocess import ClipNormalization, clips_to_tensor
from classify.registry import build_classifier, build_kwargs
from classify.train import TrainSettings, train_classifier


@dataclass(frozen=True)
class RealClassifier:
    model: nn.Module
    normalization: ClipNormalization
    size: int | None
    label: str

    @torch.no_grad()
    def predict(self, clips: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Predicted class index per uint8 clip `(N, F, H, W)`."""
        self.model.eval()
        device = next(self.model.parameters()).device
        predictions = [
            self.model(
                clips_to_tensor(clips[start : start + batch_size], self.normalization, self.size).to(device)
            )
            .argmax(dim=1)
            .cpu()
            for start in range(0, clips.shape[0], batch_size)
        ]
        return torch.cat(predictions).numpy()


def train_real_classifier(
    clips: np.ndarray, labels: np.ndarray, num_classes: int, seed: int, epochs: int = 30, device: str = "cpu"
) -> RealClassifier:
    """A tiny I3D trained on real clips only, with the recipe of the demo's filter classifier (AdamW lr 1e-3,
    batch 8, basic augmentation) but its own seed and run."""
    size = int(clips.shape[-1])
    model = build_classifier("i3d", num_classes, 1, **build_kwargs("i3d", tiny=True))
    transform = build_clip_transform(AugmentSettings.for_method("basic"), size)
    dataset = ClipDataset(clips, labels, size, ClipNormalization(), transform)
    train_classifier(
        model, dataset, TrainSettings(epochs=epochs, lr=1e-3, seed=seed, device=device), num_classes
    )
    label = f"tiny I3D trained here on the {len(labels)} real training clips ({epochs} epochs, seed {seed})"
    return RealClassifier(model.eval(), ClipNormalization(), size, label)


def load_real_classifier(directory: Path, device: str = "cpu") -> RealClassifier:
    model, meta = load_classifier(directory, device=device)
    label = f"classifier {meta['name']} from {directory}"
    return RealClassifier(model, ClipNormalization(**meta["normalization"]), meta.get("size"), label)
