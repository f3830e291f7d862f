"""Removing objects that no row points to (left by a crash between an object write and its row's commit)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.jobs import scores_object_key
from store.models import Asset, Clip, Job, utcnow
from store.objects import ObjectStore


def referenced_keys(session: Session) -> set[str]:
    keys: set[str] = set()
    for column in (
        Asset.object_key,
        Asset.array_object_key,
        Clip.object_key,
        Clip.preview_key,
        Job.database_object_key,
    ):
        keys.update(k for k in session.scalars(select(column)) if k)
    keys.update(scores_object_key(job_id) for job_id in session.scalars(select(Job.id)))
    return keys


def sweep_orphans(store: ObjectStore, session: Session, min_age: timedelta = timedelta(hours=1)) -> list[str]:
    """Delete unreferenced objects older than `min_age` (younger ones may be in a transaction in flight)."""
    cutoff = utcnow() - min_age
    candidates = [info for info in store.list() if info.modified is None or info.modified <= cutoff]
    referenced = referenced_keys(session)
    removed = [info.key for info in candidates if info.key not in referenced]
    for key in removed:
        store.delete(key)
    return removed
