"""Models loaded once per worker process: pipeline + the semantic filter's classifier, keyed by checksum."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from classify.checkpoint import load_classifier
from filter.scoring import ClassifierInput, checkpoint_classifier_input
from generator.fast import FastPathSettings, FastSampler
from generator.pipeline import CtrlGenAugPipeline
from store.models import ModelRecord
from store.registry import model_checksum

CLASSIFIER_DIR = "classifier"


@dataclass
class LoadedModel:
    checksum: str
    pipeline: CtrlGenAugPipeline
    sampler: FastSampler
    classifier: nn.Module
    classifier_input: ClassifierInput
    classifier_meta: dict[str, Any]


def load_model(record: ModelRecord, device: str, fast_path: FastPathSettings | None = None) -> LoadedModel:
    """Load a registered model directory after checking its files still have the registered checksum."""
    model_dir = Path(record.path)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model {record.name} {record.version}: directory {model_dir} is missing")
    checksum = model_checksum(model_dir)
    if checksum != record.checksum:
        raise ValueError(
            f"model {record.name} {record.version}: files in {model_dir} have checksum {checksum[:12]}…, "
            f"registered {record.checksum[:12]}…; register the changed model under a new version"
        )
    if not (model_dir / CLASSIFIER_DIR).is_dir():
        raise FileNotFoundError(
            f"model {record.name} {record.version}: {model_dir / CLASSIFIER_DIR} is missing; the semantic "
            "filter needs the real-data classifier (`ctrlgenaug train classifier`, then `train assemble`)"
        )
    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir, device=device, dtype=torch.float32)
    classifier, meta = load_classifier(model_dir / CLASSIFIER_DIR, device=device)
    if meta["num_classes"] != len(record.class_names):
        raise ValueError(
            f"model {record.name}: classifier has {meta['num_classes']} classes, the model "
            f"{len(record.class_names)}"
        )
    sampler = FastSampler(pipeline, fast_path)
    return LoadedModel(checksum, pipeline, sampler, classifier, checkpoint_classifier_input(meta), meta)


class PipelineCache:
    """Least-recently-used loaded models of this process (one on a GPU worker by default)."""

    def __init__(self, device: str, size: int = 1, fast_path: FastPathSettings | None = None) -> None:
        self.device = device
        self.size = size
        self.fast_path = fast_path
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()

    def get(self, record: ModelRecord) -> LoadedModel:
        if record.checksum in self._models:
            self._models.move_to_end(record.checksum)
            return self._models[record.checksum]
        while len(self._models) >= self.size:
            self._models.popitem(last=False)
        loaded = load_model(record, self.device, self.fast_path)
        self._models[record.checksum] = loaded
        return loaded

    def __len__(self) -> int:
        return len(self._models)
