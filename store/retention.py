"""Deleting a project's data on request or by its retention setting: objects, rows and previews go; the
audit chain records each deletion with the checksums of what was deleted, and a bank that used a deleted
asset keeps the asset's checksum for its clips' provenance."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from store.audit import append_event
from store.jobs import scores_object_key
from store.models import (
    FINISHED_JOB_STATUSES,
    Asset,
    AssetKind,
    Bank,
    Clip,
    Dataset,
    DatasetClip,
    Job,
    Project,
    utcnow,
)
from store.objects import ObjectStore

logger = logging.getLogger(__name__)
FINISHED = [status.value for status in FINISHED_JOB_STATUSES]


@dataclass(frozen=True)
class Deletion:
    objects_deleted: int
    audit_seq: int


def job_object_prefix(job_id: uuid.UUID) -> str:
    """Every object of a job (clips, previews, filter scores, exported databases) lies under this prefix."""
    return scores_object_key(job_id).rsplit("/", 1)[0] + "/"


def asset_in_use(session: Session, asset: Asset) -> str | None:
    """Why the asset cannot be deleted now (a job still to run uses it, or a registered dataset); None if
    it can."""
    bank_uses = or_(Bank.image_prior_asset_id == asset.id, Bank.motion_asset_id == asset.id)
    job = session.scalar(
        select(Job).join(Bank, Bank.job_id == Job.id).where(bank_uses, Job.status.not_in(FINISHED)).limit(1)
    )
    if job is not None:
        return f"asset is used by job {job.id}, which is {job.status.value}; delete it when the job has ended"
    clip_uses = or_(DatasetClip.image_prior_asset_id == asset.id, DatasetClip.motion_asset_id == asset.id)
    dataset = session.scalar(
        select(Dataset).join(DatasetClip, DatasetClip.dataset_id == Dataset.id).where(clip_uses).limit(1)
    )
    if dataset is not None:
        return f"asset is a training clip's condition in dataset {dataset.name!r}"
    return None


def _delete_objects(store: ObjectStore, keys: list[str]) -> int:
    # after the commit: a key left by a failure here is unreferenced, and store.sweeper removes it
    for key in keys:
        store.delete(key)
    return len(keys)


def delete_asset(session: Session, store: ObjectStore, asset: Asset, reason: str) -> Deletion:
    """Delete a locked asset that `asset_in_use` allows: its row and objects; banks that used it keep its
    checksum. Commits."""
    column, sha_column = (
        (Bank.image_prior_asset_id, "image_prior_sha256")
        if asset.kind == AssetKind.image_prior
        else (Bank.motion_asset_id, "motion_sha256")
    )
    banks = session.scalar(select(func.count()).select_from(Bank).where(column == asset.id)) or 0
    session.execute(
        update(Bank).where(column == asset.id).values({column.key: None, sha_column: asset.sha256})
    )
    keys = [asset.object_key, asset.array_object_key]
    event = append_event(
        session,
        asset.project_id,
        "asset.deleted",
        {
            "asset_id": str(asset.id),
            "kind": asset.kind.value,
            "sha256": asset.sha256,
            "reason": reason,
            "banks": banks,
        },
    )
    seq = event.seq
    session.execute(delete(Asset).where(Asset.id == asset.id))
    session.commit()
    return Deletion(_delete_objects(store, keys), seq)


def delete_job(session: Session, store: ObjectStore, job: Job) -> Deletion:
    """Delete a locked, finished job: its rows (banks, clips, outbox) and every object under its prefix;
    the audit event keeps the checksums of its clips and database. Commits."""
    clips = session.execute(select(Clip.id, Clip.sha256).where(Clip.job_id == job.id).order_by(Clip.id))
    event = append_event(
        session,
        job.project_id,
        "job.deleted",
        {
            "job_id": str(job.id),
            "status": job.status.value,
            "model_checksum": job.model.checksum,
            "database_sha256": job.database_sha256,
            "clips": {str(clip_id): sha256 for clip_id, sha256 in clips},
        },
    )
    job_id, seq = job.id, event.seq
    session.execute(delete(Job).where(Job.id == job_id))
    session.commit()
    return Deletion(_delete_objects(store, [info.key for info in store.list(job_object_prefix(job_id))]), seq)


def sweep_expired_assets(session: Session, store: ObjectStore) -> list[uuid.UUID]:
    """Delete the assets older than their project's `asset_retention_days` that nothing still needs;
    returns their ids. An asset locked by a concurrent request or sweep is left for the next round."""
    now = utcnow()
    deleted: list[uuid.UUID] = []
    for project_id, days in session.execute(select(Project.id, Project.asset_retention_days)).tuples().all():
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        expired = session.scalars(
            select(Asset.id).where(Asset.project_id == project_id, Asset.created_at < cutoff)
        ).all()
        for asset_id in expired:
            asset = session.scalar(
                select(Asset).where(Asset.id == asset_id).with_for_update(skip_locked=True)
            )
            if asset is None or asset_in_use(session, asset) is not None:
                session.rollback()
                continue
            delete_asset(session, store, asset, f"retention: older than {days} days")
            deleted.append(asset_id)
    if deleted:
        logger.info("retention sweep deleted %d assets", len(deleted))
    return deleted


def set_asset_retention(session: Session, project: Project, days: int | None) -> None:
    """Keep the project's uploaded assets `days` days (None: until deleted); an audit event. Not committed."""
    if days is not None and days < 1:
        raise ValueError("days: must be at least 1")
    project.asset_retention_days = days
    append_event(session, project.id, "project.retention_set", {"asset_retention_days": days})
