"""`train classifier`: the real-data classifier the semantic filter scores clips with (Algorithm 1, stage 1),
trained by classify/'s loop on the labelled clip windows and saved with classify's checkpoint format."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from training.checkpoint import FINAL_DIR, write_run_files
from training.config import ClassifierStageConfig, ConfigError
from training.data import (
    ClipReader,
    clip_windows,
    is_unlabelled,
    load_clip_set,
    resize_frames,
    to_uint8_frames,
)
from training.trainer import LOSS_LOG, TrainResult

CLASSIFIER_COMPONENT = "classifier"


def labelled_windows(config: ClassifierStageConfig) -> tuple[np.ndarray, np.ndarray, Any]:
    """uint8 windows `(N, F, R, R)` of the labelled clips and their class rows in `classes.json`."""
    clip_set = load_clip_set(config.data)
    reader = ClipReader(clip_set)
    clips, labels = [], []
    for index, start in clip_windows(clip_set, config.data.num_frames):
        record = clip_set.records[index]
        if is_unlabelled(record):
            continue
        frames = reader.frames(index)[start : start + config.data.num_frames]
        clips.append(to_uint8_frames(resize_frames(frames, config.data.resolution)).numpy())
        labels.append(clip_set.class_names.index(record.class_name))
    if len(set(labels)) < 2:
        raise ConfigError("data: the classifier needs labelled clips of at least two classes")
    return np.stack(clips), np.asarray(labels, dtype=np.int64), clip_set


def train_classifier_stage(config: ClassifierStageConfig, show_progress: bool = True) -> TrainResult:
    from classify.augment import AugmentSettings, build_clip_transform
    from classify.checkpoint import save_classifier
    from classify.data import ClipDataset
    from classify.preprocess import ClipNormalization
    from classify.registry import build_classifier, build_kwargs
    from classify.train import TrainSettings, train_classifier

    started = time.perf_counter()
    clips, labels, clip_set = labelled_windows(config)
    size = config.data.resolution
    frames = config.data.num_frames
    try:
        kwargs = build_kwargs(
            config.architecture, tiny=config.tiny, frames=frames, size=size, **config.classifier
        )
        model = build_classifier(config.architecture, clip_set.num_classes, 1, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"architecture/classifier: {exc}") from exc
    device = (
        "cuda"
        if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    settings = TrainSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=config.seed,
        device=device,
    )
    normalization = ClipNormalization()
    transform = None
    if config.augmentation == "basic":
        transform = build_clip_transform(AugmentSettings.for_method("basic"), size)
    dataset = ClipDataset(clips, labels, size, normalization, transform)

    config.output_dir.mkdir(parents=True, exist_ok=True)
    loss_log = config.output_dir / LOSS_LOG
    bar = tqdm(total=config.epochs, desc="train classifier", unit="epoch", disable=not show_progress)
    with loss_log.open("w") as handle:

        def progress(epoch: int, epochs: int, loss: float) -> None:
            handle.write(json.dumps({"step": epoch, "loss": loss}) + "\n")
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")

        history = train_classifier(model, dataset, settings, clip_set.num_classes, progress=progress)
    bar.close()

    final_dir = config.output_dir / FINAL_DIR
    build_config = {
        "num_classes": clip_set.num_classes,
        "in_channels": 1,
        "build_kwargs": kwargs,
        "normalization": normalization.to_dict(),
        "class_names": list(clip_set.class_names),
        "frames": frames,
        "size": size,
        "train": settings.to_dict(),
    }
    save_classifier(final_dir / CLASSIFIER_COMPONENT, model.cpu(), config.architecture, build_config)
    seconds = time.perf_counter() - started
    write_run_files(
        final_dir,
        config,
        clip_set.manifest_checksum,
        config.epochs,
        last_loss=history[-1],
        train_seconds=seconds,
        clips=len(labels),
        class_counts=np.bincount(labels, minlength=clip_set.num_classes).tolist(),
    )
    return TrainResult(config.output_dir, final_dir, config.epochs, history[-1], seconds)
