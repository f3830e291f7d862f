"""What a running job watches between denoising steps: its cancel flag, its deadline and the worker's
shutdown; and what it reports: its phase and, while sampling, the batch, denoising step and ETA."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from store import webhooks
from store.models import Job, JobPhase, JobStatus
from worker.progress import SamplingClock

# Set when the worker process begins a warm shutdown (Celery's `worker_shutting_down` signal).
SHUTDOWN = threading.Event()

CANCELLED, TIME_LIMIT, SHUTTING_DOWN, YIELDED = "cancelled", "time_limit", "shutdown", "yielded"


class JobInterrupted(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class JobMonitor:
    """Polls the job's cancel flag at most every `poll_interval_s` and writes progress at most every
    `progress_interval_s` (the last step of a loop is always written), adding a `progress` webhook event at
    most every `progress_event_interval_s`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        job_id: uuid.UUID,
        *,
        time_limit_s: float,
        poll_interval_s: float,
        progress_interval_s: float,
        fair_share_slice_s: float = float("inf"),
        progress_event_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.time_limit_s = time_limit_s
        self.poll_interval_s = poll_interval_s
        self.progress_interval_s = progress_interval_s
        self.clock = clock
        self.deadline = clock() + time_limit_s
        self.slice_ends = clock() + fair_share_slice_s
        self._waiting_polled_at = -float("inf")
        self._polled_at = -float("inf")
        self._cancel_requested = False
        self._progress_at = -float("inf")
        self.progress_event_interval_s = progress_event_interval_s
        self._progress_event_at = -float("inf")
        self._sampling: SamplingClock | None = None
        self.interruption: JobInterrupted | None = None

    def cancel_requested(self) -> bool:
        now = self.clock()
        if now - self._polled_at >= self.poll_interval_s:
            with self.sessions() as session:
                self._cancel_requested = bool(
                    session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
                )
            self._polled_at = now
        return self._cancel_requested

    def should_stop(self) -> bool:
        """The sampler's `should_cancel`: True (and `interruption` set) when the job must stop now."""
        if SHUTDOWN.is_set():
            self.interruption = JobInterrupted(SHUTTING_DOWN, "the worker is shutting down")
        elif self.clock() > self.deadline:
            self.interruption = JobInterrupted(
                TIME_LIMIT, f"time limit of {self.time_limit_s:g} s exceeded (task_time_limit_s)"
            )
        elif self.cancel_requested():
            self.interruption = JobInterrupted(CANCELLED, "cancelled on request")
        return self.interruption is not None

    def should_yield(self) -> bool:
        """Between batches: True (and `interruption` set) once this delivery has had its slice while a job of
        another project waits in the queue (fair share: the worker turns to it, this job goes to the back)."""
        now = self.clock()
        if now < self.slice_ends or now - self._waiting_polled_at < self.poll_interval_s:
            return False
        self._waiting_polled_at = now
        with self.sessions() as session:
            project_id = select(Job.project_id).where(Job.id == self.job_id).scalar_subquery()
            waiting = session.scalar(
                select(Job.id)
                .where(Job.status == JobStatus.queued, Job.project_id != project_id, ~Job.cancel_requested)
                .limit(1)
            )
        if waiting is not None:
            self.interruption = JobInterrupted(YIELDED, f"yielded to job {waiting} of another project")
        return waiting is not None

    def check(self) -> None:
        """Raise `JobInterrupted` between the phases of a job."""
        if self.should_stop():
            assert self.interruption is not None
            raise self.interruption

    def enter(self, phase: JobPhase) -> None:
        """Write the phase the job enters now (sampling is entered by its first denoising step)."""
        self._write(phase=phase, batch=0, batches=0, eta_seconds=None)

    def plan_sampling(self, batches: int) -> None:
        """Start timing the sampling of `batches` batches."""
        self._sampling = SamplingClock(batches, self.clock)

    def step(self, step: int, total: int) -> None:
        assert self._sampling is not None, "plan_sampling first"
        eta = self._sampling.step(step, total)
        now = self.clock()
        if step < total and now - self._progress_at < self.progress_interval_s:
            return
        self._progress_at = now
        self._write(
            phase=JobPhase.sampling,
            batch=self._sampling.batch,
            batches=self._sampling.batches,
            denoise_step=step,
            denoise_steps=total,
            eta_seconds=eta,
        )

    def _progress_event_due(self) -> bool:
        now = self.clock()
        interval = self.progress_event_interval_s
        if interval is None or now - self._progress_event_at < interval:
            return False
        self._progress_event_at = now
        return True

    def _write(self, **values: object) -> None:
        """Write progress, with a `progress` webhook event at most every `progress_event_interval_s` (None:
        no progress events)."""
        with self.sessions() as session:
            session.execute(update(Job).where(Job.id == self.job_id).values(**values))
            if self._progress_event_due():
                webhooks.add_event(session, session.get_one(Job, self.job_id), "progress")
            session.commit()
