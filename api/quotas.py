"""Quotas on submitted work: one job's size (422 naming the field and the limit) and what one project may have
waiting and stored (429 with Retry-After naming the limit). Limits are settings (store.settings)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.errors import field_error
from store.models import FINISHED_JOB_STATUSES, Asset, Clip, Job, JobStatus, ModelRecord, Project
from store.settings import Settings

QUOTA_EXCEEDED = "quota_exceeded"
UNFINISHED = sorted(status.value for status in set(JobStatus) - FINISHED_JOB_STATUSES)


@dataclass(frozen=True)
class JobPlan:
    """The work a job asks for, fixed when it is accepted."""

    banks: int
    clips: int
    steps: int

    @property
    def clip_steps(self) -> int:
        return self.clips * self.steps

    def frame_bytes(self, model: ModelRecord) -> int:
        """The uint8 frames of its clips (the NPZ payload before compression)."""
        return self.clips * model.num_frames * model.height * model.width


def check_job_size(settings: Settings, plan: JobPlan, clips_loc: Sequence[str | int]) -> None:
    """422 when one job plans more clips, or clips × steps, than a job may."""
    if plan.clips > settings.max_job_clips:
        raise field_error(
            422,
            clips_loc,
            f"the job plans {plan.clips:,} clips; a job may plan at most "
            f"max_job_clips={settings.max_job_clips:,} "
            "(fewer banks or samples, or banks_from.max_banks)",
            QUOTA_EXCEEDED,
        )
    if plan.clip_steps > settings.max_job_clip_steps:
        raise field_error(
            422,
            ["body", "sampler", "steps"],
            f"the job plans {plan.clips:,} clips × {plan.steps} steps = {plan.clip_steps:,} clip-steps; "
            f"a job may plan at most max_job_clip_steps={settings.max_job_clip_steps:,} "
            "(fewer steps or clips)",
            QUOTA_EXCEEDED,
        )


def _too_many(settings: Settings, msg: str) -> HTTPException:
    error = field_error(429, ["body"], msg, QUOTA_EXCEEDED)
    error.headers = {"Retry-After": str(settings.quota_retry_after_s)}
    return error


def stored_bytes(session: Session, project: Project) -> int:
    """Bytes a project stores, from the rows: clips' NPZs, uploaded originals, exported databases."""
    jobs = select(Job.id).where(Job.project_id == project.id)
    clips = select(func.coalesce(func.sum(Clip.size_bytes), 0)).where(Clip.job_id.in_(jobs))
    assets = select(func.coalesce(func.sum(Asset.size_bytes), 0)).where(Asset.project_id == project.id)
    databases = select(func.coalesce(func.sum(Job.database_size_bytes), 0)).where(
        Job.project_id == project.id
    )
    return sum(int(session.scalar(query) or 0) for query in (clips, assets, databases))


def check_project_quota(
    session: Session, settings: Settings, project: Project, model: ModelRecord, plan: JobPlan
) -> None:
    """429 (Retry-After) when the project's unfinished jobs, their unsampled work, or its storage would pass
    its cap with this job. Locks the project row (PostgreSQL) so concurrent submissions count each other."""
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update(key_share=True))
    unfinished = (Job.project_id == project.id) & Job.status.in_(UNFINISHED)
    jobs, queued = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum((Job.clips_total - Job.clips_done) * Job.denoise_steps), 0),
        ).where(unfinished)
    ).one()
    if jobs + 1 > settings.max_project_unfinished_jobs:
        raise _too_many(
            settings,
            f"the project has {jobs} unfinished jobs; max_project_unfinished_jobs="
            f"{settings.max_project_unfinished_jobs} (retry when one has finished)",
        )
    if queued + plan.clip_steps > settings.max_project_queued_clip_steps:
        raise _too_many(
            settings,
            f"the project's unfinished jobs hold {queued:,} clip-steps; this job's {plan.clip_steps:,} "
            f"would pass max_project_queued_clip_steps={settings.max_project_queued_clip_steps:,} "
            "(retry when they have run)",
        )
    stored = stored_bytes(session, project)
    planned = plan.frame_bytes(model)
    if stored + planned > settings.max_project_storage_bytes:
        raise _too_many(
            settings,
            f"the project stores {stored:,} bytes; this job's clips ({planned:,} bytes of frames) would pass "
            f"max_project_storage_bytes={settings.max_project_storage_bytes:,} (an operator can raise it)",
        )
