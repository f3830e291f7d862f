"""The project's audit log and the verification of its hash chain."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from api.deps import AuditProjectDep, SessionDep
from api.errors import ERROR_RESPONSES, field_error
from api.pagination import decode_cursor, encode_cursor
from api.schemas import AuditEventOut, AuditVerification, Page
from store.audit import verify_chain
from store.models import AuditEvent

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)


EVENT_FILTERS = ("kind", "job", "clip", "cursor", "limit")


def known_filters_only(request: Request) -> None:
    for name in request.query_params:
        if name not in EVENT_FILTERS:
            raise field_error(
                422, ["query", name], f"unknown filter; the filters are {', '.join(EVENT_FILTERS)}"
            )


@router.get("/events", response_model=Page[AuditEventOut], dependencies=[Depends(known_filters_only)])
def list_audit_events(
    session: SessionDep,
    project: AuditProjectDep,
    kind: Annotated[
        str | None, Query(max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)*$", description="e.g. job.created")
    ] = None,
    job: Annotated[uuid.UUID | None, Query(description="events of this job")] = None,
    clip: Annotated[uuid.UUID | None, Query(description="events of this clip")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[AuditEventOut]:
    """The project's audit log (a hash chain), oldest first; filter by `kind`, `job` or `clip`."""
    after = decode_cursor(cursor, 1)[0] if cursor is not None else 0
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < 2**31:
        raise field_error(422, ["query", "cursor"], "malformed cursor")
    query = select(AuditEvent).where(AuditEvent.project_id == project.id, AuditEvent.seq > after)
    if kind is not None:
        query = query.where(AuditEvent.kind == kind)
    if job is not None:
        query = query.where(AuditEvent.payload["job_id"].as_string() == str(job))
    if clip is not None:
        query = query.where(AuditEvent.payload["clip_id"].as_string() == str(clip))
    events = list(session.scalars(query.order_by(AuditEvent.seq).limit(limit + 1)))
    next_cursor = None
    if len(events) > limit:
        events = events[:limit]
        next_cursor = encode_cursor([events[-1].seq])
    return Page[AuditEventOut](
        items=[AuditEventOut.model_validate(e) for e in events], next_cursor=next_cursor
    )


@router.get("/verify", response_model=AuditVerification)
def verify_audit_chain(session: SessionDep, project: AuditProjectDep) -> AuditVerification:
    """Recompute the audit log's hash chain; names the first event that does not match."""
    report = verify_chain(session, project.id)
    return AuditVerification(
        ok=report.ok, events=report.events, first_bad_seq=report.first_bad_seq, message=report.message
    )
