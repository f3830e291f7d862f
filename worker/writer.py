"""Storing sampled clips off the sampling thread: objects first, then the clip row, counts and audit event."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from store.audit import append_event
from store.jobs import clip_object_key, clip_preview_key, mark_bank_done, upsert_clip
from store.models import Bank, Clip, Job
from store.objects import ObjectStore
from worker.clip_files import clip_npz_bytes, preview_gif_bytes


@dataclass(frozen=True)
class ClipSlot:
    """Where a clip belongs and how it was drawn."""

    project_id: uuid.UUID
    job_id: uuid.UUID
    bank_id: uuid.UUID
    bank_index: int
    index_in_bank: int
    seed: int
    class_index: int | None
    model_checksum: str


def store_clip(
    sessions: sessionmaker[Session],
    store: ObjectStore,
    slot: ClipSlot,
    frames: np.ndarray,
    execution: Mapping[str, Any],
) -> Clip:
    """Write the clip's NPZ and preview under their deterministic keys, then commit its row.

    `execution` (the sampler's device, precision and kernels) goes into the row and, as JSON, the NPZ.
    A crash before the commit leaves only objects that the next run overwrites with the same bytes.
    """
    metadata: dict[str, int | str] = {
        "seed": slot.seed,
        "bank_index": slot.bank_index,
        "index_in_bank": slot.index_in_bank,
        "class_index": -1 if slot.class_index is None else slot.class_index,
        "job_id": str(slot.job_id),
        "model_checksum": slot.model_checksum,
        "execution": json.dumps(execution, sort_keys=True),
    }
    clip_info = store.put(
        clip_object_key(slot.job_id, slot.bank_index, slot.index_in_bank),
        clip_npz_bytes(frames, metadata),
        content_type="application/x-npz",
    )
    preview_info = store.put(
        clip_preview_key(slot.job_id, slot.bank_index, slot.index_in_bank, "gif"),
        preview_gif_bytes(frames),
        content_type="image/gif",
    )
    assert clip_info.sha256 is not None
    with sessions() as session:
        clip = upsert_clip(
            session,
            job_id=slot.job_id,
            bank_id=slot.bank_id,
            index_in_bank=slot.index_in_bank,
            seed=slot.seed,
            object_key=clip_info.key,
            sha256=clip_info.sha256,
            size_bytes=clip_info.size,
            preview_key=preview_info.key,
            execution=dict(execution),
        )
        bank_count = select(func.count()).where(Clip.bank_id == slot.bank_id).scalar_subquery()
        job_count = select(func.count()).where(Clip.job_id == slot.job_id).scalar_subquery()
        session.execute(update(Bank).where(Bank.id == slot.bank_id).values(clips_done=bank_count))
        session.execute(update(Job).where(Job.id == slot.job_id).values(clips_done=job_count))
        append_event(
            session,
            slot.project_id,
            "clip.stored",
            {
                "job_id": str(slot.job_id),
                "clip_id": str(clip.id),
                "bank": slot.bank_index,
                "index_in_bank": slot.index_in_bank,
                "seed": slot.seed,
                "sha256": clip_info.sha256,
            },
        )
        session.commit()
        return clip


def finish_bank(sessions: sessionmaker[Session], bank_id: uuid.UUID) -> None:
    with sessions() as session:
        mark_bank_done(session, session.get_one(Bank, bank_id))
        session.commit()


class ClipWriter:
    """One background thread stores clips (and marks banks done) in submission order while the caller
    samples the next batch.

    The first failure stops it: later work is skipped, so a bank is never marked done after one of its clips
    failed to store (the next delivery samples that clip again), and `raise_if_failed` lets the sampling stop.
    """

    def __init__(
        self, sessions: sessionmaker[Session], store: ObjectStore, execution: Mapping[str, Any]
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.execution = execution
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-writer")
        self._pending: list[Future[object]] = []
        self._error: BaseException | None = None

    def _unless_failed(self, work: Callable[..., object], *args: object) -> object:
        if self._error is not None:
            return None
        try:
            return work(*args)
        except BaseException as exc:
            self._error = exc
            raise

    def submit(self, slot: ClipSlot, frames: np.ndarray) -> None:
        self._pending.append(
            self._executor.submit(
                self._unless_failed, store_clip, self.sessions, self.store, slot, frames, self.execution
            )
        )

    def finish_bank(self, bank_id: uuid.UUID) -> None:
        """Mark the bank done once the clips submitted before are stored."""
        self._pending.append(self._executor.submit(self._unless_failed, finish_bank, self.sessions, bank_id))

    def raise_if_failed(self) -> None:
        """Re-raise the error that stopped the writer, if one did."""
        if self._error is not None:
            raise self._error

    def wait(self) -> None:
        """Block until everything submitted is done; re-raise the first error."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                self.wait()
            else:
                for future in self._pending:
                    future.exception()
        finally:
            self.close()
