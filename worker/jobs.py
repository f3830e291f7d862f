"""One delivery of a job: claim it, run what is left of generate → filter → export, record the outcome.

Every phase is resumable: a redelivered job skips stored clips and finished phases.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import urllib3.exceptions
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from store import webhooks
from store.audit import append_event
from store.export import export_database
from store.models import FINISHED_JOB_STATUSES, Bank, BankStatus, Job, JobPhase, JobStatus, utcnow
from store.outbox import RUN_JOB_TASK, add_message, dispatch_outbox
from worker.context import WorkerContext
from worker.filtering import filter_job, job_clips
from worker.generation import generate_job
from worker.job_quality import measure_job_quality
from worker.locks import job_lock
from worker.monitor import CANCELLED, SHUTTING_DOWN, YIELDED, JobInterrupted, JobMonitor
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

# Failures a later delivery may not meet: the database, the object store or the network was unreachable.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    OperationalError,
    urllib3.exceptions.HTTPError,
)
BUSY, MISSING = "busy", "missing"


class JobTooLarge(Exception):
    """A job planned before the per-job quotas (or under larger ones) that the worker will not start."""


class RequeueJob(Exception):
    """The delivery stopped for the worker's shutdown; the message goes back to the queue uncounted."""


class RetryJob(Exception):
    """A transient failure; the job is delivered again later (and counted)."""


def _job_for_update(session: Session, job_id: uuid.UUID) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id).with_for_update(of=Job))


def _add_timing(job: Job, stage: str, seconds: float) -> None:
    job.timings = {**job.timings, stage: round(float(job.timings.get(stage, 0.0)) + seconds, 3)}


def _finish(
    ctx: WorkerContext, job_id: uuid.UUID, status: JobStatus, error: str | None, extra: dict[str, Any]
) -> None:
    with ctx.sessions() as session:
        job = _job_for_update(session, job_id)
        assert job is not None
        job.status = status
        job.error = error
        job.finished_at = utcnow()
        job.phase = job.eta_seconds = None
        if status != JobStatus.succeeded:
            session.execute(
                update(Bank)
                .where(Bank.job_id == job_id, Bank.status == BankStatus.generating)
                .values(status=BankStatus.failed if status == JobStatus.failed else BankStatus.pending)
            )
        payload = {"job_id": str(job_id), **extra}
        if error is not None:
            payload["error"] = error
        append_event(session, job.project_id, f"job.{status.value}", payload)
        webhooks.add_event(session, job, status.value)
        session.commit()


def begin_delivery(ctx: WorkerContext, job_id: uuid.UUID) -> JobStatus | str:
    """Count the delivery and move a queued job to `generating`; returns the status to resume from, or
    why there is nothing to run (a finished status, MISSING)."""
    with ctx.sessions() as session:
        job = _job_for_update(session, job_id)
        if job is None:
            return MISSING
        if job.status in FINISHED_JOB_STATUSES:
            return job.status
        job_status = job.status
        if job.cancel_requested:
            session.rollback()
            _finish(ctx, job_id, JobStatus.cancelled, None, {"deliveries": job.deliveries})
            return JobStatus.cancelled
        job.deliveries += 1
        deliveries = job.deliveries
        if deliveries > ctx.settings.worker_max_deliveries:
            session.commit()
            last_error = job.error or (
                "none recorded: its worker stopped during each delivery (killed, out of memory or crashed)"
            )
            error = (
                f"poison job: delivered {deliveries} times without finishing "
                f"(worker_max_deliveries={ctx.settings.worker_max_deliveries}); last error: {last_error}"
            )
            _finish(ctx, job_id, JobStatus.failed, error, {"deliveries": deliveries})
            return JobStatus.failed
        job.turn_at = utcnow()
        if job_status == JobStatus.queued:
            job.status = job_status = JobStatus.generating
            if job.started_at is None:  # not a job resumed after yielding its turn
                job.started_at = utcnow()
                append_event(
                    session, job.project_id, "job.started", {"job_id": str(job_id), "deliveries": deliveries}
                )
                webhooks.add_event(session, job, "started")
        session.commit()
        return job_status


def _yield_turn(ctx: WorkerContext, job_id: uuid.UUID) -> None:
    """Back to `queued` (uncounted) with a new run message at the back of the queue: the worker turns to
    another project's job and this one resumes from its stored clips later."""
    with ctx.sessions() as session:
        job = _job_for_update(session, job_id)
        assert job is not None
        job.status = JobStatus.queued
        job.phase = job.eta_seconds = None
        job.deliveries -= 1
        session.execute(
            update(Bank)
            .where(Bank.job_id == job_id, Bank.status == BankStatus.generating)
            .values(status=BankStatus.pending)
        )
        add_message(session, RUN_JOB_TASK, {"job_id": str(job_id)}, job_id=job_id)
        session.commit()
        dispatch_outbox(session, ctx.send_task)


def _check_size(settings: WorkerSettings, job: Job) -> None:
    clip_steps = job.clips_total * job.denoise_steps
    if job.clips_total > settings.max_job_clips or clip_steps > settings.max_job_clip_steps:
        raise JobTooLarge(
            f"the job plans {job.clips_total:,} clips × {job.denoise_steps} steps = {clip_steps:,} "
            f"clip-steps; this worker runs at most max_job_clips={settings.max_job_clips:,} and "
            f"max_job_clip_steps={settings.max_job_clip_steps:,}"
        )


def _generate(ctx: WorkerContext, job_id: uuid.UUID, monitor: JobMonitor) -> None:
    with ctx.sessions() as session:
        job = session.get_one(Job, job_id)
        _check_size(ctx.settings, job)
        record = job.model
    monitor.enter(JobPhase.loading_model)
    model = ctx.models.get(record)
    monitor.check()
    started = time.monotonic()
    generate_job(ctx.sessions, ctx.store, model, job_id, monitor)
    with ctx.sessions() as session:
        job = session.get_one(Job, job_id)
        _add_timing(job, "generate", time.monotonic() - started)
        job.status = JobStatus.filtering
        session.commit()


def _filter(ctx: WorkerContext, job_id: uuid.UUID, monitor: JobMonitor) -> None:
    monitor.check()
    monitor.enter(JobPhase.filtering)
    started = time.monotonic()
    with ctx.sessions() as session:
        job = session.get_one(Job, job_id)
        model = ctx.models.get(job.model)
        result = filter_job(session, ctx.store, model, job, ctx.settings.worker_batch_size)
        _add_timing(job, "filter", time.monotonic() - started)
        measured = time.monotonic()
        job.quality = measure_job_quality(session, ctx.store, job, job_clips(session, job_id))
        _add_timing(job, "quality", time.monotonic() - measured)
        job.status = JobStatus.exporting
        append_event(
            session,
            job.project_id,
            "job.filtered",
            {
                "job_id": str(job_id),
                "clips_kept": job.clips_kept,
                "dropped_counts": job.dropped_counts,
                "band": [job.band_low, job.band_high],
                "settings": result.settings.model_dump(mode="json"),
                "checks": job.filter_checks,
            },
        )
        session.commit()


def _export(ctx: WorkerContext, job_id: uuid.UUID, monitor: JobMonitor) -> None:
    monitor.check()
    monitor.enter(JobPhase.exporting)
    started = time.monotonic()
    with ctx.sessions() as session:
        job = session.get_one(Job, job_id)
        info = export_database(session, ctx.store, job)
        _add_timing(job, "export", time.monotonic() - started)
        append_event(
            session,
            job.project_id,
            "database.exported",
            {"job_id": str(job_id), "object_key": info.key, "sha256": info.sha256, "size_bytes": info.size},
        )
        session.commit()
    _finish(ctx, job_id, JobStatus.succeeded, None, {"clips_kept": job.clips_kept})


PHASES = {JobStatus.generating: _generate, JobStatus.filtering: _filter, JobStatus.exporting: _export}
PHASE_ORDER = (JobStatus.generating, JobStatus.filtering, JobStatus.exporting)


def _run_phases(ctx: WorkerContext, job_id: uuid.UUID, status: JobStatus) -> None:
    monitor = JobMonitor(
        ctx.sessions,
        job_id,
        time_limit_s=ctx.settings.task_time_limit_s,
        poll_interval_s=ctx.settings.cancel_poll_interval_s,
        progress_interval_s=ctx.settings.progress_interval_s,
        fair_share_slice_s=ctx.settings.worker_fair_share_slice_s,
        progress_event_interval_s=ctx.settings.webhook_progress_interval_s,
    )
    for phase in PHASE_ORDER[PHASE_ORDER.index(status) :]:
        PHASES[phase](ctx, job_id, monitor)


def process_job(ctx: WorkerContext, job_id: uuid.UUID) -> JobStatus | str:
    """Run one delivery of the job; returns the job's status afterwards (or BUSY / MISSING).

    Raises `RequeueJob` when the worker shuts down mid-job and `RetryJob` after a transient failure
    while deliveries remain.
    """
    with job_lock(ctx.engine, job_id) as held:
        if not held:
            return BUSY
        status = begin_delivery(ctx, job_id)
        if status not in PHASES:
            return status
        try:
            _run_phases(ctx, job_id, JobStatus(status))
        except JobInterrupted as exc:
            if exc.reason == SHUTTING_DOWN:
                with ctx.sessions() as session:
                    session.execute(
                        update(Job)
                        .where(Job.id == job_id)
                        .values(deliveries=Job.deliveries - 1, phase=None, eta_seconds=None)
                    )
                    session.commit()
                raise RequeueJob(str(exc)) from exc
            if exc.reason == YIELDED:
                logger.info("job %s: %s", job_id, exc)
                _yield_turn(ctx, job_id)
                return JobStatus.queued
            if exc.reason == CANCELLED:
                _finish(ctx, job_id, JobStatus.cancelled, None, {})
                return JobStatus.cancelled
            _finish(ctx, job_id, JobStatus.failed, str(exc), {})
            return JobStatus.failed
        except TRANSIENT_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("job %s: transient failure: %s", job_id, error)
            with ctx.sessions() as session:
                job = session.get_one(Job, job_id)
                job.error = error
                deliveries = job.deliveries
                session.commit()
            if deliveries < ctx.settings.worker_max_deliveries:
                raise RetryJob(error) from exc
            _finish(ctx, job_id, JobStatus.failed, f"gave up after {deliveries} deliveries: {error}", {})
            return JobStatus.failed
        except Exception as exc:
            logger.exception("job %s failed", job_id)
            _finish(ctx, job_id, JobStatus.failed, f"{type(exc).__name__}: {exc}", {})
            return JobStatus.failed
        return JobStatus.succeeded
