"""The real data build a model trained on: named in the model's training provenance by its manifest SHA-256,
found as the dataset of a project registered from that manifest (its reference-clip assets hold the clips)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Dataset, ModelRecord
from store.registry import read_model_quality

# The file training.assemble writes into a model directory (training.assemble.PROVENANCE_FILE; a test checks).
PROVENANCE_FILE = "training_provenance.json"


def model_data_build(model_dir: Path) -> str | None:
    """The manifest SHA-256 of the data build the model's sequence stage trained on, if recorded."""
    path = Path(model_dir) / PROVENANCE_FILE
    if not path.is_file():
        return None
    checksum = json.loads(path.read_text()).get("sequence", {}).get("data_manifest_checksum")
    return checksum if isinstance(checksum, str) else None


def model_memorisation_threshold(model_dir: Path) -> float | None:
    """The memorisation threshold calibrated on the model's data build (its quality card's overall
    `memorisation_threshold`), if the model has been evaluated."""
    quality = read_model_quality(Path(model_dir)) or {}
    threshold = quality.get("overall", {}).get("memorisation_threshold")
    return float(threshold) if isinstance(threshold, int | float) else None


def find_data_build(
    session: Session, model: ModelRecord, project_id: object
) -> tuple[Dataset | None, str | None]:
    """The project's dataset registered from the model's data build (the earliest, if several), or None and
    why."""
    checksum = model_data_build(Path(model.path))
    if checksum is None:
        return None, (
            f"model {model.name} {model.version} names no data build ({PROVENANCE_FILE} records no "
            "sequence-stage data_manifest_checksum)"
        )
    dataset = session.scalar(
        select(Dataset)
        .where(Dataset.project_id == project_id, Dataset.manifest_sha256 == checksum)
        .order_by(Dataset.created_at)
        .limit(1)
    )
    if dataset is None:
        return None, (
            f"model {model.name} {model.version} was trained on the data build with manifest SHA-256 "
            f"{checksum}, which is not registered as a dataset of this project "
            "(`ctrlgenaug datasets register`)"
        )
    if list(dataset.class_names) != list(model.class_names):
        return None, (
            f"dataset {dataset.name!r} has classes {dataset.class_names}, the model {model.class_names}"
        )
    return dataset, None
