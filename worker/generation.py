"""Sampling a job's missing clips, banks batched together, each clip from its own deterministic seed."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from typing import overload

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from generator.conditions import BankConditions
from generator.model_info import ModelInfo
from generator.sampling import SamplerSettings, SamplingCancelled
from store.jobs import clip_seed, mark_bank_done
from store.models import Bank, BankStatus, Clip, Job, JobPhase
from store.objects import ObjectStore
from worker.conditions import bank_conditions
from worker.monitor import JobInterrupted, JobMonitor
from worker.pipelines import LoadedModel
from worker.writer import ClipSlot, ClipWriter

# Banks whose conditions (image prior, motion field) stay loaded while their clips are sampled.
LOADED_BANKS = 64


def stored_indices(session: Session, job_id: uuid.UUID) -> dict[uuid.UUID, set[int]]:
    """The clip indices stored so far, by bank (one query for the whole job)."""
    stored: dict[uuid.UUID, set[int]] = defaultdict(set)
    for bank_id, index in session.execute(
        select(Clip.bank_id, Clip.index_in_bank).where(Clip.job_id == job_id)
    ):
        stored[bank_id].add(index)
    return stored


class SlotConditions(Sequence[BankConditions]):
    """The conditions of each clip slot, loaded per bank when first asked for (on the fast path's helper
    thread, while the previous batch samples) and kept for the last `LOADED_BANKS` banks."""

    def __init__(
        self, sessions: sessionmaker[Session], store: ObjectStore, info: ModelInfo, slots: list[ClipSlot]
    ) -> None:
        self._bank_ids = [slot.bank_id for slot in slots]

        @lru_cache(maxsize=LOADED_BANKS)
        def load(bank_id: uuid.UUID) -> BankConditions:
            with sessions() as session:
                return bank_conditions(store, session.get_one(Bank, bank_id), info)

        self._load = load

    def __len__(self) -> int:
        return len(self._bank_ids)

    @overload
    def __getitem__(self, index: int) -> BankConditions: ...
    @overload
    def __getitem__(self, index: slice) -> list[BankConditions]: ...
    def __getitem__(self, index: int | slice) -> BankConditions | list[BankConditions]:
        if isinstance(index, slice):
            return [self._load(bank_id) for bank_id in self._bank_ids[index]]
        return self._load(self._bank_ids[index])


def missing_slots(session: Session, job: Job, model_checksum: str) -> list[ClipSlot]:
    """The clips of the job's unfinished banks that have no row yet, in bank order; banks with none
    missing are marked done and the others `generating`.

    Reads first, writes last: the write transaction (SQLite: the database's one write lock) stays short,
    so a cancel or a progress update does not wait behind the planning of a large job."""
    stored = stored_indices(session, job.id)
    slots, finished, started = [], [], []
    for bank in sorted(job.banks, key=lambda b: b.index):
        if bank.status == BankStatus.done:
            continue
        missing = sorted(set(range(bank.samples)) - stored[bank.id])
        if not missing:
            finished.append(bank)
            continue
        started.append(bank)
        slots += [
            ClipSlot(
                project_id=job.project_id,
                job_id=job.id,
                bank_id=bank.id,
                bank_index=bank.index,
                index_in_bank=i,
                seed=clip_seed(job.seed, bank.index, i),
                class_index=bank.class_index,
                model_checksum=model_checksum,
            )
            for i in missing
        ]
    for bank in started:
        bank.status = BankStatus.generating
    for bank in finished:
        mark_bank_done(session, bank)
    return slots


def generate_job(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    model: LoadedModel,
    job_id: uuid.UUID,
    monitor: JobMonitor,
) -> int:
    """Sample and store the job's clips that have no row yet; returns how many were stored.

    Clips of different banks share batches (the fast path sizes them from free GPU memory). The clip
    writer stores each clip and marks a bank done after its last clip, off the sampling thread; sampling
    stops at the next batch once the writer failed. Running it again after a crash, a failed write or a
    redelivery stores each clip exactly once.
    """
    monitor.enter(JobPhase.preparing_conditions)
    with sessions() as session:
        job = session.get_one(Job, job_id)
        sampler = SamplerSettings(**job.sampler)
        slots = missing_slots(session, job, model.checksum)
        session.commit()
    if not slots:
        return 0
    last_of_bank = {slot.bank_id: position for position, slot in enumerate(slots)}
    conditions = SlotConditions(sessions, store, model.pipeline.info, slots)
    seeds = [slot.seed for slot in slots]
    plan = model.sampler.plan(conditions, seeds, sampler)
    monitor.plan_sampling(len(plan))
    with ClipWriter(sessions, store, model.sampler.execution) as writer:
        try:
            for positions, clips in model.sampler.batches(
                conditions,
                seeds,
                sampler,
                progress=monitor.step,
                should_cancel=monitor.should_stop,
                plan=plan,
            ):
                writer.raise_if_failed()
                for position, frames in zip(positions, clips, strict=True):
                    slot = slots[position]
                    writer.submit(slot, frames)
                    if last_of_bank[slot.bank_id] == position:
                        writer.finish_bank(slot.bank_id)
                if max(positions) < len(slots) - 1 and monitor.should_yield():
                    assert monitor.interruption is not None
                    raise monitor.interruption
        except SamplingCancelled as exc:
            raise monitor.interruption or JobInterrupted("cancelled", str(exc)) from exc
    return len(slots)
