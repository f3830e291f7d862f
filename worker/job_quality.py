"""A job's quality figures: its own clips against the training clips of the model's data build, when that
build is registered as a dataset of the job's project.

The model names its data build by the manifest SHA-256 its sequence stage trained on
(`training_provenance.json`, `sequence.data_manifest_checksum`); the dataset registered in the job's project
with that `manifest_sha256` holds the training clips (store.data_builds). Only the cheap figures of quality/
are computed (no classifier training, no extra sampling): coherence, improved precision/recall and coverage,
memorisation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from quality.evaluate import QualitySettings, manifold_figures
from quality.metrics import clip_distances, cross_patient_threshold, frame_coherence
from store.data_builds import find_data_build
from store.models import Clip, Job, ModelRecord
from store.objects import ObjectStore
from worker.filtering import load_clip_frames
from worker.reference import TrainingClips, load_training_clips

CLIP_FIGURES = (
    "clips",
    "coherence_generated",
    "coherence_real",
    "coherence_ratio",
    "precision",
    "recall",
    "coverage",
    "memorised_share",
    "nearest_training_distance",
)


def _mean(values: np.ndarray, rows: np.ndarray) -> float | None:
    return float(values[rows].mean()) if rows.any() else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _clip_set_figures(
    real: TrainingClips,
    generated: np.ndarray,
    labels: np.ndarray,
    class_names: list[str],
    threshold: float,
    settings: QualitySettings,
) -> dict[str, Any]:
    """`CLIP_FIGURES` per class name and `overall` for one set of generated clips (labels -1: no class)."""
    real_coherence = frame_coherence(real.clips)
    if len(generated):
        coherence = frame_coherence(generated)
        nearest = clip_distances(generated, real.clips).min(axis=1)
        manifold = manifold_figures(real.clips, real.labels, generated, labels, len(class_names), settings)
    else:
        coherence = nearest = np.zeros(0)
        manifold = {
            index: {"precision": None, "recall": None, "coverage": None}
            for index in (None, *range(len(class_names)))
        }

    def summary(class_index: int | None) -> dict[str, float | None]:
        rows = np.ones(len(labels), bool) if class_index is None else labels == class_index
        real_rows = np.ones(len(real.labels), bool) if class_index is None else real.labels == class_index
        values: dict[str, float | None] = {
            "clips": float(rows.sum()),
            "coherence_generated": _mean(coherence, rows),
            "coherence_real": _mean(real_coherence, real_rows),
            "memorised_share": _mean((nearest < threshold).astype(np.float64), rows),
            "nearest_training_distance": _mean(nearest, rows),
        }
        values["coherence_ratio"] = _ratio(values["coherence_generated"], values["coherence_real"])
        values.update(manifold[class_index])
        return {name: values[name] for name in CLIP_FIGURES}

    return {
        "per_class": {name: summary(index) for index, name in enumerate(class_names)},
        "overall": summary(None),
    }


def _definitions(settings: QualitySettings) -> dict[str, str]:
    return {
        "sets": "all: every clip the job generated; kept: the clips the filter kept (the database)",
        "coherence": "mean Pearson correlation of consecutive frames; ratio = generated / real training",
        "feature_space": settings.feature_space(),
        "memorisation_distance": (
            "root-mean-square pixel difference in [0, 1] units between frame-aligned clips at the model's "
            "size; a generated clip is memorised when its nearest training clip is closer than the "
            f"{settings.memorisation_quantile:g}-quantile of the distances from each registered training "
            "clip to its nearest training clip of another patient (a clip without a recorded patient is "
            "its own patient)"
        ),
        "real": "the training clips of the registered dataset, fitted to the model's frames and size",
    }


def measure_job_quality(session: Session, store: ObjectStore, job: Job, clips: list[Clip]) -> dict[str, Any]:
    """`{"figures": ..., "reason": None}` for the job's filtered clips, or `{"figures": None, "reason": ...}`
    when the model names no data build registered in the job's project."""
    dataset, reason = find_data_build(session, job.model, job.project_id)
    if dataset is None:
        return {"figures": None, "reason": reason}
    model: ModelRecord = job.model
    real = load_training_clips(store, session, dataset, model)
    if len(set(real.patients)) < 2:
        return {
            "figures": None,
            "reason": f"dataset {dataset.name!r} has training clips of {model.num_frames} frames or more of "
            "fewer than two patients",
        }
    settings = QualitySettings()
    threshold = cross_patient_threshold(real.clips, real.patients, settings.memorisation_quantile)
    generated = np.stack([load_clip_frames(store, clip) for clip in clips])
    labels = np.asarray([-1 if c.bank.class_index is None else c.bank.class_index for c in clips], np.int64)
    kept = np.asarray([bool(c.kept) for c in clips])
    class_names = list(model.class_names)
    figures = {
        "data": {
            "dataset": dataset.name,
            "dataset_id": str(dataset.id),
            "manifest_sha256": dataset.manifest_sha256,
            "training_clips": len(real.labels),
            "skipped_short_clips": real.skipped,
        },
        "definitions": _definitions(settings),
        "memorisation_threshold": threshold,
        "all": _clip_set_figures(real, generated, labels, class_names, threshold, settings),
        "kept": _clip_set_figures(real, generated[kept], labels[kept], class_names, threshold, settings),
    }
    return {"figures": figures, "reason": None}
