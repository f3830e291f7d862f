"""The model card of a generator directory (`ctrlgenaug_model.json`) and the model checksum."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from contracts.classes import check_class_names
from contracts.model_dir import MODEL_CARD as MODEL_CARD
from contracts.model_dir import model_checksum as model_checksum
from generator.conditions import CONDITION_NAMES


@dataclass(frozen=True)
class ModelInfo:
    """What a client needs to know to request clips from a model."""

    name: str
    version: str
    class_names: tuple[str, ...]
    num_frames: int
    height: int
    width: int
    conditions: tuple[str, ...]

    def __post_init__(self) -> None:
        for field_name in ("name", "version"):
            if not isinstance(getattr(self, field_name), str) or not getattr(self, field_name):
                raise ValueError(f"model {field_name} must be a non-empty string")
        object.__setattr__(self, "class_names", check_class_names(self.class_names))
        object.__setattr__(self, "conditions", tuple(self.conditions))
        for field_name in ("num_frames", "height", "width"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model {field_name} must be a positive integer, got {value!r}")
        unknown = sorted(set(self.conditions) - set(CONDITION_NAMES))
        if unknown:
            raise ValueError(f"model conditions {unknown} are not among {list(CONDITION_NAMES)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> dict[str, Any]:
        card = asdict(self)
        return {**card, "class_names": list(self.class_names), "conditions": list(self.conditions)}

    @classmethod
    def from_json(cls, card: dict[str, Any]) -> ModelInfo:
        expected = set(cls.__dataclass_fields__)
        missing, unknown = sorted(expected - set(card)), sorted(set(card) - expected)
        if missing or unknown:
            raise ValueError(f"{MODEL_CARD}: missing fields {missing}, unknown fields {unknown}")
        return cls(**card)

    def save(self, model_dir: Path) -> None:
        (model_dir / MODEL_CARD).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, model_dir: Path) -> ModelInfo:
        path = model_dir / MODEL_CARD
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: not a Ctrl-GenAug model directory")
        return cls.from_json(json.loads(path.read_text()))
