"""Celery tasks (thin): the logic lives in worker.jobs and the modules it calls."""

from __future__ import annotations

import uuid

from celery import Celery, Task
from celery.exceptions import Reject

from store.outbox import RUN_JOB_TASK
from worker.jobs import RequeueJob, RetryJob
from worker.turns import run_turn


def register_tasks(app: Celery) -> None:
    @app.task(name=RUN_JOB_TASK, bind=True, max_retries=None, shared=False)
    def run_job(self: Task, job_id: str) -> str:
        """Generate, filter and export job `job_id` (what is left of it), or the queued job whose turn it is
        (worker.turns)."""
        context = self.app.ctrlgenaug_context.get()  # type: ignore[attr-defined]
        try:
            _, status = run_turn(context, uuid.UUID(job_id))
        except RequeueJob as exc:
            raise Reject(str(exc), requeue=True) from exc
        except RetryJob as exc:
            raise self.retry(exc=exc, countdown=context.settings.worker_retry_delay_s) from exc
        return str(getattr(status, "value", status))
