"""Registering a generator model directory: its card (`ctrlgenaug_model.json`) and its checksum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts.classes import check_class_names
from contracts.conditions import CONDITION_NAMES
from contracts.model_dir import MODEL_CARD as MODEL_CARD
from contracts.model_dir import model_checksum as model_checksum
from store.models import ModelRecord

# Written by `ctrlgenaug evaluate synthesis --write-card` (quality/card.py); a file of the model directory, so
# the model checksum covers it.
QUALITY_CARD = "quality.json"


class ModelCard(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    version: str = Field(min_length=1, max_length=50)
    class_names: list[str]
    num_frames: int = Field(gt=0)
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    conditions: list[str]

    @field_validator("class_names")
    @classmethod
    def _class_names(cls, names: list[str]) -> list[str]:
        return list(check_class_names(names))


def read_model_card(model_dir: Path) -> ModelCard:
    card_path = model_dir / MODEL_CARD
    if not card_path.is_file():
        raise ValueError(f"model_dir: {model_dir} has no {MODEL_CARD}")
    try:
        card = ModelCard.model_validate(json.loads(card_path.read_text()))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise ValueError(f"{MODEL_CARD}: {exc}") from exc
    unknown = sorted(set(card.conditions) - set(CONDITION_NAMES))
    if unknown:
        raise ValueError(f"{MODEL_CARD}: conditions {unknown} are not among {list(CONDITION_NAMES)}")
    return card


def read_model_quality(model_dir: Path) -> dict[str, Any] | None:
    """The model directory's quality card, or None when the model has not been evaluated."""
    path = Path(model_dir) / QUALITY_CARD
    if not path.is_file():
        return None
    try:
        quality = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{QUALITY_CARD}: not JSON: {exc}") from exc
    if not isinstance(quality, dict):
        raise ValueError(f"{QUALITY_CARD}: expected an object")
    return quality


def register_model(session: Session, model_dir: Path) -> ModelRecord:
    """Add the model (idempotent for the same files); a different checksum under a used name+version fails."""
    model_dir = Path(model_dir).resolve()
    card = read_model_card(model_dir)
    read_model_quality(model_dir)
    checksum = model_checksum(model_dir)
    existing = session.scalar(
        select(ModelRecord).where(ModelRecord.name == card.name, ModelRecord.version == card.version)
    )
    if existing is not None:
        if existing.checksum != checksum:
            raise ValueError(
                f"model: {card.name} {card.version} is registered with checksum {existing.checksum[:12]}…, "
                f"these files have {checksum[:12]}…; bump the version"
            )
        existing.path = str(model_dir)
        return existing
    record = ModelRecord(path=str(model_dir), checksum=checksum, **card.model_dump())
    session.add(record)
    session.flush()
    return record


def find_model(session: Session, reference: str) -> ModelRecord | None:
    """`name` (latest registered version) or `name:version`."""
    name, _, version = reference.partition(":")
    query = select(ModelRecord).where(ModelRecord.name == name)
    if version:
        query = query.where(ModelRecord.version == version)
    return session.scalar(query.order_by(ModelRecord.registered_at.desc()).limit(1))
