"""The real reference of a job's filter checks (issue 17): the training clips of the model's data build (the
dataset of the job's project registered from it, store.data_builds), fitted to the model's frames and size,
and the memorised threshold the job uses."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from filter.neighbours import cross_patient_threshold
from filter.reference import RealReference, ReferenceIndex
from filter.settings import ReferenceSettings
from quality.sources import fit_clip
from store.data_builds import find_data_build
from store.models import Asset, Dataset, Job, ModelRecord
from store.objects import ObjectStore


@dataclass(frozen=True)
class TrainingClips:
    clip_ids: list[str]
    clips: np.ndarray  # uint8 (N, F, H, W) at the model's frames and size
    labels: np.ndarray
    patients: list[str]
    skipped: list[str]  # clip ids with fewer frames than the model samples


def load_training_clips(
    store: ObjectStore, session: Session, dataset: Dataset, model: ModelRecord
) -> TrainingClips:
    """The dataset's training clips (the reference-clip assets hold each clip file's bytes), checked against
    the manifest's SHA-256 and fitted to the model's frame count and size; clips shorter than the model's
    frame count are skipped."""
    shape = (model.num_frames, model.height, model.width)
    clip_ids, clips, labels, patients, skipped = [], [np.zeros((0, *shape), np.uint8)], [], [], []
    for member in dataset.clips:
        asset = session.get_one(Asset, member.motion_asset_id)
        data = store.get(asset.object_key)
        if hashlib.sha256(data).hexdigest() != member.sha256:
            raise ValueError(
                f"dataset {dataset.name!r} clip {member.clip_id}: stored bytes do not match its SHA-256"
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            frames = npz["frames"]
        if frames.shape[0] < model.num_frames:
            skipped.append(member.clip_id)
            continue
        clip_ids.append(member.clip_id)
        clips.append(fit_clip(frames, *shape)[None])
        labels.append(member.class_index)
        patients.append(member.patient_id or f"clip:{member.clip_id}")
    return TrainingClips(
        clip_ids, np.concatenate(clips), np.asarray(labels, dtype=np.int64), patients, skipped
    )


def load_reference(
    session: Session, store: ObjectStore, job: Job, checks: ReferenceSettings
) -> tuple[ReferenceIndex, ReferenceSettings, dict[str, Any]]:
    """The job's reference index, its checks with the memorised threshold filled in (the job's, else the data
    build's 0-quantile of nearest-clip distances between training clips of different patients) and the record
    of what was checked against (data build, threshold and where it came from, feature space)."""
    dataset, reason = find_data_build(session, job.model, job.project_id)
    if dataset is None:
        raise ValueError(f"the filter's reference checks need the model's real data build: {reason}")
    real = load_training_clips(store, session, dataset, job.model)
    source = "job settings (the model's calibrated threshold unless the job gave one)"
    if checks.memorised and checks.memorised_threshold is None:
        threshold = cross_patient_threshold(real.clips, real.patients, 0.0)
        checks = checks.model_copy(update={"memorised_threshold": threshold})
        source = f"calibrated on dataset {dataset.name!r}: 0-quantile of cross-patient nearest-clip distances"
    index = ReferenceIndex(RealReference(real.clip_ids, real.labels, real.clips), checks)
    record = {
        "dataset": dataset.name,
        "dataset_id": str(dataset.id),
        "manifest_sha256": dataset.manifest_sha256,
        "training_clips": len(real.clip_ids),
        "skipped_short_clips": real.skipped,
        "memorised_threshold": checks.memorised_threshold if checks.memorised else None,
        "threshold_source": source if checks.memorised else None,
        "feature_space": checks.feature_space(),
        "manifold_radius_floor": index.radius_floor if checks.off_manifold else None,
    }
    return index, checks, record
