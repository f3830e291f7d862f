"""Whose turn a run message gives: round-robin by project first, then by job within the project.

Every queued job has a run message on the broker (outbox, relay). A worker that takes one for a queued job
runs instead the queued job whose turn it is: of the projects with a queued job, the one with the fewest
jobs running, then the one served least recently (never first); within it, the job served least recently,
then the oldest. The message's own job gets a new message at the back of the queue, so a project with ten
jobs has one turn in each round, not ten.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from store.models import Job, JobStatus
from store.outbox import RUN_JOB_TASK, add_message, dispatch_outbox
from worker.context import WorkerContext
from worker.jobs import BUSY, process_job

logger = logging.getLogger(__name__)

RUNNING_JOB_STATUSES = (JobStatus.generating, JobStatus.filtering, JobStatus.exporting)


def next_turn(session: Session, job_id: uuid.UUID) -> uuid.UUID:
    """The job to run for a message naming `job_id`: itself unless it is a queued job and another queued,
    not cancelled job's turn comes first (see the module's docstring)."""
    job = session.get(Job, job_id)
    if job is None or job.status != JobStatus.queued or job.cancel_requested:
        return job_id
    waiting = select(Job.project_id).where(Job.status == JobStatus.queued, ~Job.cancel_requested)
    projects = (
        select(
            Job.project_id,
            func.sum(case((Job.status.in_(RUNNING_JOB_STATUSES), 1), else_=0)).label("running"),
            func.max(Job.turn_at).label("served_at"),
        )
        .where(Job.project_id.in_(waiting))
        .group_by(Job.project_id)
        .subquery()
    )
    chosen = session.scalar(
        select(Job.id)
        .join(projects, projects.c.project_id == Job.project_id)
        .where(Job.status == JobStatus.queued, ~Job.cancel_requested)
        .order_by(
            projects.c.running,
            projects.c.served_at.asc().nulls_first(),
            Job.turn_at.asc().nulls_first(),
            Job.created_at,
            Job.id,
        )
        .limit(1)
    )
    return job_id if chosen is None else chosen


def _is_queued(ctx: WorkerContext, job_id: uuid.UUID) -> bool:
    with ctx.sessions() as session:
        return session.scalar(select(Job.status).where(Job.id == job_id)) == JobStatus.queued


def _send_to_back(ctx: WorkerContext, job_id: uuid.UUID) -> None:
    with ctx.sessions() as session:
        add_message(session, RUN_JOB_TASK, {"job_id": str(job_id)}, job_id=job_id)
        session.commit()
        dispatch_outbox(session, ctx.send_task)


def run_turn(ctx: WorkerContext, job_id: uuid.UUID) -> tuple[uuid.UUID, JobStatus | str]:
    """Handle one run message naming `job_id`; returns the job that ran and its status afterwards (as
    `worker.jobs.process_job`, whose `RequeueJob` and `RetryJob` pass through).

    When another job's turn comes first, the message's job goes to the back of the queue before that job
    runs; if another worker took that job meanwhile (BUSY), this turn ends there.
    """
    with ctx.sessions() as session:
        chosen = next_turn(session, job_id)
    if chosen == job_id:
        status = process_job(ctx, job_id)
        if status == BUSY and _is_queued(ctx, job_id):
            # held while queued: its runner is handing it back (fair share) or another worker is starting it;
            # a new message keeps it on the queue in the first case (in the second it finds the job running)
            _send_to_back(ctx, job_id)
        return job_id, status
    logger.info("job %s: its message goes to the back; job %s has the turn", job_id, chosen)
    _send_to_back(ctx, job_id)
    return chosen, process_job(ctx, chosen)
