"""Deleting an asset or a job on request (store.retention): objects, rows and previews go, the audit chain
records the deletion with the checksums of what went."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import JobsWriteProjectDep, SessionDep, StateDep
from api.errors import ERROR_RESPONSES, ErrorResponse, field_error, not_found
from api.schemas import DeletionOut
from store import retention
from store.models import FINISHED_JOB_STATUSES, Asset, Job

router = APIRouter(responses=ERROR_RESPONSES)
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorResponse,
        "description": "still in use: `msg` names the job or dataset and its status",
    }
}


@router.delete(
    "/v1/assets/{asset_id}",
    response_model=DeletionOut,
    tags=["assets"],
    operation_id="delete_asset",
    responses=CONFLICT,
)
def delete_asset(
    asset_id: uuid.UUID, session: SessionDep, project: JobsWriteProjectDep, state: StateDep
) -> DeletionOut:
    """Delete an uploaded asset: its row and stored objects. Clips of finished jobs that used it keep its
    checksum in their provenance; the audit chain records `asset.deleted`. 409 while a queued or running job
    uses it, or when it is a condition of a registered dataset's training clip."""
    asset = session.scalar(
        select(Asset).where(Asset.id == asset_id, Asset.project_id == project.id).with_for_update()
    )
    if asset is None:
        raise not_found(["path", "asset_id"], "asset")
    conflict = retention.asset_in_use(session, asset)
    if conflict is not None:
        raise field_error(409, ["path", "asset_id"], conflict, "conflict")
    deletion = retention.delete_asset(session, state.object_store, asset, "request")
    return DeletionOut(id=asset_id, objects_deleted=deletion.objects_deleted, audit_seq=deletion.audit_seq)


@router.delete(
    "/v1/jobs/{job_id}",
    response_model=DeletionOut,
    tags=["jobs"],
    operation_id="delete_job",
    responses=CONFLICT,
)
def delete_job(
    job_id: uuid.UUID, session: SessionDep, project: JobsWriteProjectDep, state: StateDep
) -> DeletionOut:
    """Delete a finished job (succeeded, failed or cancelled): its banks, clips, previews, filter scores and
    exported databases. The audit chain records `job.deleted` with the checksums of its clips and database.
    A job still queued or running is a 409 naming its status: cancel it first, then delete it."""
    job = session.scalar(
        select(Job).where(Job.id == job_id, Job.project_id == project.id).with_for_update(of=Job)
    )
    if job is None:
        raise not_found(["path", "job_id"], "job")
    if job.status not in FINISHED_JOB_STATUSES:
        raise field_error(
            409,
            ["path", "job_id"],
            f"job is {job.status.value}; cancel it (POST /v1/jobs/{job.id}/cancel) and delete it once it is "
            "cancelled",
            "conflict",
        )
    deletion = retention.delete_job(session, state.object_store, job)
    return DeletionOut(id=job_id, objects_deleted=deletion.objects_deleted, audit_seq=deletion.audit_seq)
