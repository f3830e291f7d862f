"""Sampling one bank's missing clips in batches, each clip from its own deterministic seed."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from generator.sampling import SamplerSettings, SamplingCancelled
from store.jobs import clip_seed
from store.models import Bank, BankStatus, Clip, Job
from store.objects import ObjectStore
from worker.conditions import bank_conditions
from worker.monitor import JobInterrupted, JobMonitor
from worker.pipelines import LoadedModel
from worker.writer import ClipSlot, ClipWriter


def stored_indices(session: Session, bank_id: uuid.UUID) -> set[int]:
    return set(session.scalars(select(Clip.index_in_bank).where(Clip.bank_id == bank_id)))


def mark_bank_done(session: Session, bank: Bank) -> None:
    bank.status = BankStatus.done
    session.flush()
    done = select(func.count()).where(Bank.job_id == bank.job_id, Bank.status == BankStatus.done)
    session.execute(update(Job).where(Job.id == bank.job_id).values(banks_done=done.scalar_subquery()))


def generate_bank(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    model: LoadedModel,
    job_id: uuid.UUID,
    bank_index: int,
    monitor: JobMonitor,
    batch_size: int,
) -> int:
    """Sample and store the clips of bank `bank_index` that have no row yet; returns how many were stored.

    Running it again after a crash or redelivery stores each clip exactly once.
    """
    with sessions() as session:
        job = session.get_one(Job, job_id)
        bank = session.scalars(select(Bank).where(Bank.job_id == job_id, Bank.index == bank_index)).one()
        missing = sorted(set(range(bank.samples)) - stored_indices(session, bank.id))
        if not missing:
            mark_bank_done(session, bank)
            session.commit()
            return 0
        bank.status = BankStatus.generating
        session.commit()
        conditions = bank_conditions(store, bank, model.pipeline.info)
        sampler = SamplerSettings(**job.sampler)
        slots = [
            ClipSlot(
                project_id=job.project_id,
                job_id=job.id,
                bank_id=bank.id,
                bank_index=bank.index,
                index_in_bank=i,
                seed=clip_seed(job.seed, bank.index, i),
                class_index=bank.class_index,
                model_checksum=model.checksum,
            )
            for i in missing
        ]
        bank_id = bank.id
    with ClipWriter(sessions, store) as writer:
        for start in range(0, len(slots), batch_size):
            batch = slots[start : start + batch_size]
            try:
                clips = model.pipeline.sample(
                    [conditions] * len(batch),
                    [slot.seed for slot in batch],
                    sampler,
                    progress=monitor.step,
                    should_cancel=monitor.should_stop,
                )
            except SamplingCancelled as exc:
                raise monitor.interruption or JobInterrupted("cancelled", str(exc)) from exc
            for slot, frames in zip(batch, clips, strict=True):
                writer.submit(slot, frames)
    with sessions() as session:
        mark_bank_done(session, session.get_one(Bank, bank_id))
        session.commit()
    return len(slots)
