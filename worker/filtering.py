"""Filtering a job (paper §3.5, Algorithm 1, between the `memorised` and `off_manifold` checks against the
model's real training data when the job switches them on): score every clip, run the filter, store the
decisions and the job's scores (`S.npz`, the filter.scores format, so `ctrlgenaug filter rerun` can replay
it)."""

from __future__ import annotations

import hashlib
import math
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from filter.core import FilterResult, FilterSettings, ReferenceSettings, run_filter
from filter.reference import ReferenceIndex, ReferenceScores
from filter.scores import MEASURED_WITH, save_scores
from filter.scoring import score_clips
from store.jobs import scores_object_key
from store.models import Bank, Clip, Job
from store.objects import ObjectStore
from worker.clip_files import read_clip_frames
from worker.pipelines import LoadedModel
from worker.reference import load_reference

SCORING_CHUNK_CLIPS = 32


def job_clips(session: Session, job_id: uuid.UUID) -> list[Clip]:
    return list(
        session.scalars(
            select(Clip).join(Bank).where(Clip.job_id == job_id).order_by(Bank.index, Clip.index_in_bank)
        )
    )


def load_clip_frames(store: ObjectStore, clip: Clip) -> np.ndarray:
    data = store.get(clip.object_key)
    digest = hashlib.sha256(data).hexdigest()
    if digest != clip.sha256:
        raise ValueError(
            f"clip {clip.id}: object {clip.object_key} has SHA-256 {digest}, row has {clip.sha256}"
        )
    return read_clip_frames(data)


@torch.inference_mode()
def predicted_classes(model: LoadedModel, clips: np.ndarray) -> np.ndarray:
    logits = model.classifier(model.classifier_input(clips).to(next(model.classifier.parameters()).device))
    return logits.argmax(dim=1).cpu().numpy()


@dataclass(frozen=True)
class JobScores:
    group: np.ndarray
    loss: np.ndarray
    latents: np.ndarray
    reference: ReferenceScores | None


def score_job(
    store: ObjectStore,
    model: LoadedModel,
    clips: list[Clip],
    batch_size: int,
    index: ReferenceIndex | None = None,
) -> JobScores:
    """Group (bank index), semantic loss and VAE latents of every clip, `SCORING_CHUNK_CLIPS` at a time, and
    with `index` its scores against the real training clips.

    The loss is the cross-entropy against the bank's class; a bank without a class is scored against the
    classifier's own prediction (docs/decisions.md, "worker"), which also picks its class manifold.
    """
    groups, losses, latents, references = [], [], [], []
    for start in range(0, len(clips), SCORING_CHUNK_CLIPS):
        chunk = clips[start : start + SCORING_CHUNK_CLIPS]
        frames = np.stack([load_clip_frames(store, clip) for clip in chunk])
        labels = np.array([-1 if c.bank.class_index is None else c.bank.class_index for c in chunk])
        unlabelled = labels < 0
        if unlabelled.any():
            labels[unlabelled] = predicted_classes(model, frames[unlabelled])
        loss, latent = score_clips(
            frames,
            labels.astype(np.int64),
            model.classifier,
            model.classifier_input,
            model.pipeline.encode_latents,
            batch_size=batch_size,
        )
        groups.append(np.array([c.bank.index for c in chunk], dtype=np.int64))
        losses.append(loss)
        latents.append(latent)
        if index is not None:
            references.append(index.score(frames, labels))
    reference = ReferenceScores.concatenate(references) if references else None
    return JobScores(np.concatenate(groups), np.concatenate(losses), np.concatenate(latents), reference)


def job_filter_settings(job: Job) -> tuple[FilterSettings, ReferenceSettings]:
    """Algorithm 1's settings and the reference checks' from the job's stored filter settings."""
    stored = job.filter_settings
    algorithm_1 = {name: stored[name] for name in FilterSettings.model_fields if name in stored}
    checks = {name: stored[name] for name in ReferenceSettings.model_fields if name in stored}
    return FilterSettings(**algorithm_1), ReferenceSettings(**checks)


def record_decisions(job: Job, clips: list[Clip], result: FilterResult) -> None:
    for clip, decision in zip(clips, result.clips, strict=True):
        clip.kept = decision.kept
        clip.reason = decision.reason
        clip.loss = decision.loss
        clip.group_threshold = decision.group_threshold
        clip.vae_seq = decision.vae_seq
        clip.theta = decision.theta
        clip.real_distance = decision.real_distance
        clip.real_clip = decision.real_clip
        clip.manifold_share = decision.manifold_share
        clip.memorised = decision.memorised
        clip.off_manifold = decision.off_manifold
    job.clips_kept = int(result.kept.sum())
    job.dropped_counts = dict(Counter(d.reason for d in result.clips if d.reason is not None))
    # NaN when no clip reached Algorithm 1 (all memorised): no band
    job.band_low, job.band_high = (None if math.isnan(t) else t for t in result.band)


def filter_job(
    session: Session, store: ObjectStore, model: LoadedModel, job: Job, batch_size: int
) -> FilterResult:
    """Score and filter every clip of the job; decisions go on the clip rows (the caller commits)."""
    clips = job_clips(session, job.id)
    if not clips:
        raise ValueError(f"job {job.id}: no clips to filter")
    settings, checks = job_filter_settings(job)
    index = record = None
    if checks.enabled:
        index, checks, record = load_reference(session, store, job, checks)
    scores = score_job(store, model, clips, batch_size, index)
    result = run_filter(scores.group, scores.loss, scores.latents, settings, checks, scores.reference)
    measured_with = {name: getattr(checks, name) for name in MEASURED_WITH}
    with tempfile.TemporaryDirectory() as tmp:
        path = save_scores(
            Path(tmp) / "S.npz",
            scores.group,
            scores.loss,
            scores.latents,
            scores.reference,
            measured_with if scores.reference is not None else None,
        )
        with path.open("rb") as stored:
            store.put(scores_object_key(job.id), stored, content_type="application/x-npz")
    record_decisions(job, clips, result)
    job.filter_checks = record
    return result
