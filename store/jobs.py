"""What api and worker share about a job's clips: seeds, deterministic object keys, idempotent writes."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.models import Bank, BankStatus, Clip, Job, utcnow

CLIP_CONFLICT_COLUMNS = ("job_id", "bank_id", "index_in_bank")


def clip_seed(job_seed: int, bank_index: int, index_in_bank: int) -> int:
    """The seed of one clip, derived from the job seed so a re-run reproduces every clip."""
    return int(np.random.SeedSequence([job_seed, bank_index, index_in_bank]).generate_state(1, np.uint32)[0])


def clip_object_key(job_id: uuid.UUID, bank_index: int, index_in_bank: int) -> str:
    return f"jobs/{job_id}/banks/{bank_index:04d}/clip-{index_in_bank:04d}.npz"


def clip_preview_key(job_id: uuid.UUID, bank_index: int, index_in_bank: int, extension: str = "mp4") -> str:
    return f"jobs/{job_id}/banks/{bank_index:04d}/clip-{index_in_bank:04d}.{extension}"


def database_object_key(job_id: uuid.UUID, clip_format: str = "npz") -> str:
    """The job's database ZIP; one with its clips in another format than NPZ is kept beside it."""
    suffix = "" if clip_format == "npz" else f"-{clip_format}"
    return f"jobs/{job_id}/database{suffix}.zip"


def scores_object_key(job_id: uuid.UUID) -> str:
    """The job's filter inputs (`S.npz`, filter.scores format), written by the worker's filter phase."""
    return f"jobs/{job_id}/S.npz"


def upsert_clip(
    session: Session, *, job_id: uuid.UUID, bank_id: uuid.UUID, index_in_bank: int, **fields: Any
) -> Clip:
    """Insert or update the clip (job, bank, index): writing a clip twice yields one row."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {"job_id": job_id, "bank_id": bank_id, "index_in_bank": index_in_bank, **fields}
    statement = insert(Clip).values(id=uuid.uuid4(), created_at=utcnow(), updated_at=utcnow(), **values)
    statement = statement.on_conflict_do_update(
        index_elements=list(CLIP_CONFLICT_COLUMNS), set_={**fields, "updated_at": utcnow()}
    )
    session.execute(statement)
    return session.scalars(
        select(Clip)
        .where(Clip.job_id == job_id, Clip.bank_id == bank_id, Clip.index_in_bank == index_in_bank)
        .execution_options(populate_existing=True)
    ).one()


def mark_bank_done(session: Session, bank: Bank) -> None:
    """Set the bank done and recount the job's finished banks (not committed)."""
    bank.status = BankStatus.done
    session.flush()
    done = select(func.count()).where(Bank.job_id == bank.job_id, Bank.status == BankStatus.done)
    session.execute(update(Job).where(Job.id == bank.job_id).values(banks_done=done.scalar_subquery()))
