"""Getting outbox messages onto the broker: the Celery sender, and the relay that re-sends what a crash
between commit and enqueue left behind and re-enqueues jobs whose runner vanished."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import FINISHED_JOB_STATUSES, Job, OutboxMessage, utcnow
from store.outbox import RUN_JOB_TASK, TaskSender, add_message, dispatch_outbox

logger = logging.getLogger(__name__)


def send_via_celery(app: Celery) -> TaskSender:
    """A `store.outbox.TaskSender` that publishes by task name through `app`'s broker connection."""

    def send(task: str, payload: dict[str, Any]) -> None:
        app.send_task(task, kwargs=payload)

    return send


def requeue_stale_jobs(session: Session, stale_after: timedelta, everything_unfinished: bool = False) -> int:
    """Add a run message for each unfinished job whose row and outbox have been quiet for `stale_after`
    (all unfinished jobs with `everything_unfinished`, when no worker can be running them); commits."""
    cutoff = utcnow() - stale_after
    last_message = (
        select(func.max(OutboxMessage.created_at)).where(OutboxMessage.job_id == Job.id).scalar_subquery()
    )
    query = select(Job).where(Job.status.not_in([s.value for s in FINISHED_JOB_STATUSES]))
    if not everything_unfinished:
        query = query.where(Job.updated_at < cutoff, (last_message.is_(None)) | (last_message < cutoff))
    jobs = session.scalars(query.with_for_update(skip_locked=True, of=Job)).all()
    for job in jobs:
        add_message(session, RUN_JOB_TASK, {"job_id": str(job.id)}, job_id=job.id)
        logger.info("job %s (%s) re-enqueued: no progress since %s", job.id, job.status.value, job.updated_at)
    session.commit()
    return len(jobs)


def relay_once(sessions: sessionmaker[Session], send: TaskSender, stale_after: timedelta) -> int:
    """Re-enqueue stale jobs, then dispatch every pending outbox message; returns how many were sent."""
    with sessions() as session:
        requeue_stale_jobs(session, stale_after)
        return dispatch_outbox(session, send)


class OutboxRelay(threading.Thread):
    """Runs `relay_once` every `interval_s` in the background until `stop()`."""

    def __init__(
        self, sessions: sessionmaker[Session], send: TaskSender, interval_s: float, stale_after: timedelta
    ) -> None:
        super().__init__(name="outbox-relay", daemon=True)
        self.sessions = sessions
        self.send = send
        self.interval_s = interval_s
        self.stale_after = stale_after
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                relay_once(self.sessions, self.send, self.stale_after)
            except Exception:  # noqa: BLE001 - the relay keeps going; the next round retries
                logger.exception("outbox relay round failed")

    def stop(self) -> None:
        self._stopped.set()
