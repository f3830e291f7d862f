"""Delivery guarantees: Celery settings, poison jobs, transient failures, one runner per job, the relay."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update
from worker_helpers import worker_settings_for

from store.models import Job, JobStatus, OutboxMessage, utcnow
from store.outbox import RUN_JOB_TASK
from worker.celery_app import create_celery_app, visibility_timeout
from worker.context import WorkerContext
from worker.dispatch import relay_once, requeue_stale_jobs
from worker.jobs import BUSY, process_job
from worker.locks import job_lock
from worker.settings import WorkerSettings


def test_visibility_timeout_outlasts_the_task_time_limit(
    database_url: str, services: dict[str, str], tmp_path: Path
) -> None:
    settings = worker_settings_for(
        database_url, services, tmp_path, task_time_limit_s=600.0, broker_visibility_timeout_s=900.0
    )
    conf = create_celery_app(settings).conf
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit == 600.0
    assert visibility_timeout(create_celery_app(settings)) == 900.0 > conf.task_time_limit
    defaults = WorkerSettings(environment="development")
    assert defaults.broker_visibility_timeout_s > defaults.task_time_limit_s
    with pytest.raises(ValidationError, match="broker_visibility_timeout_s .* must exceed task_time_limit_s"):
        worker_settings_for(database_url, services, tmp_path, broker_visibility_timeout_s=300.0)
    # the embedded broker (kombu's SQLAlchemy transport) has no visibility timeout; the relay covers it
    embedded = WorkerSettings(environment="development", data_dir=tmp_path)
    assert create_celery_app(embedded).conf.broker_url.startswith("sqla+sqlite:///")
    assert visibility_timeout(create_celery_app(embedded)) is None


def test_transient_failures_are_retried_until_the_delivery_limit(
    context: WorkerContext, submit: Callable[..., uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = submit()
    with context.sessions() as session:
        model = context.models.get(session.get_one(Job, job_id).model)
    calls: list[int] = []

    def unreachable(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        raise ConnectionError("object store unreachable")

    monkeypatch.setattr(model.pipeline, "denoise_prepared", unreachable)
    app = create_celery_app(context.settings, context=context)
    app.tasks[RUN_JOB_TASK].apply(kwargs={"job_id": str(job_id)})  # eager: retries run in place
    assert len(calls) == context.settings.worker_max_deliveries == 3
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.failed and job.deliveries == 3
        assert job.error == "gave up after 3 deliveries: ConnectionError: object store unreachable"


def test_a_job_that_keeps_killing_its_worker_fails_as_poison(
    context: WorkerContext, submit: Callable[..., uuid.UUID]
) -> None:
    job_id = submit()
    with context.sessions() as session:  # three workers died on it
        session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.generating, deliveries=3))
        session.commit()
    assert process_job(context, job_id) == JobStatus.failed
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.deliveries == 4 and job.finished_at is not None
        assert job.error == (
            "poison job: delivered 4 times without finishing (worker_max_deliveries=3); last error: none "
            "recorded: its worker stopped during each delivery (killed, out of memory or crashed)"
        )
    assert process_job(context, job_id) == JobStatus.failed


def test_a_job_over_the_job_quota_fails_before_it_samples(
    context: WorkerContext, submit: Callable[..., uuid.UUID]
) -> None:
    job_id = submit()
    with context.sessions() as session:  # planned before the quotas existed: the probe's 10 million clips
        session.execute(update(Job).where(Job.id == job_id).values(clips_total=10_000_000, denoise_steps=999))
        session.commit()
    assert process_job(context, job_id) == JobStatus.failed
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.deliveries, job.clips_done) == (1, 0)
        assert job.error == (
            "JobTooLarge: the job plans 10,000,000 clips × 999 steps = 9,990,000,000 clip-steps; this worker "
            "runs at most max_job_clips=20,000 and max_job_clip_steps=4,000,000"
        )


def test_a_job_held_by_another_runner_is_left_alone(
    context: WorkerContext, submit: Callable[..., uuid.UUID]
) -> None:
    job_id = submit()
    with job_lock(context.engine, job_id) as held:
        assert held
        assert process_job(context, job_id) == BUSY
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.deliveries) == (JobStatus.queued, 0)


def test_cancel_before_the_first_delivery(context: WorkerContext, submit: Callable[..., uuid.UUID]) -> None:
    job_id = submit()
    with context.sessions() as session:
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True))
        session.commit()
    assert process_job(context, job_id) == JobStatus.cancelled
    with context.sessions() as session:
        assert session.get_one(Job, job_id).deliveries == 0


def test_relay_sends_pending_messages_and_requeues_stale_jobs(
    context: WorkerContext, submit: Callable[..., uuid.UUID], sender: Any
) -> None:
    sender.fail_with = ConnectionError("broker down")  # the API committed the job but could not enqueue
    job_id = submit()
    assert sender.sent == []
    sender.fail_with = None
    stale_after = timedelta(minutes=30)
    assert relay_once(context.sessions, sender, stale_after) == 1
    assert sender.sent == [(RUN_JOB_TASK, {"job_id": str(job_id)})]
    assert relay_once(context.sessions, sender, stale_after) == 0

    # the worker running it vanished an hour ago (row and outbox quiet since)
    an_hour_ago = utcnow() - timedelta(hours=1)
    with context.sessions() as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(status=JobStatus.generating, updated_at=an_hour_ago)
        )
        session.execute(update(OutboxMessage).values(created_at=an_hour_ago))
        session.commit()
    assert relay_once(context.sessions, sender, stale_after) == 1
    assert relay_once(context.sessions, sender, stale_after) == 0  # re-enqueued once per stale period
    assert sender.sent[-1] == (RUN_JOB_TASK, {"job_id": str(job_id)})
    with context.sessions() as session:
        assert len(session.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job_id)).all()) == 2
        # at start-up of the only (embedded) worker, every unfinished job goes back on the queue
        assert requeue_stale_jobs(session, stale_after, everything_unfinished=True) == 1
