"""The project's audit log and the verification of its hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import ProjectDep, SessionDep
from api.errors import ERROR_RESPONSES, field_error
from api.pagination import decode_cursor, encode_cursor
from api.schemas import AuditEventOut, AuditVerification, Page
from store.audit import verify_chain
from store.models import AuditEvent

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("/events", response_model=Page[AuditEventOut])
def list_events(
    session: SessionDep,
    project: ProjectDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[AuditEventOut]:
    after = decode_cursor(cursor, 1)[0] if cursor is not None else 0
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after < 2**31:
        raise field_error(422, ["query", "cursor"], "malformed cursor")
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.project_id == project.id, AuditEvent.seq > after)
            .order_by(AuditEvent.seq)
            .limit(limit + 1)
        )
    )
    next_cursor = None
    if len(events) > limit:
        events = events[:limit]
        next_cursor = encode_cursor([events[-1].seq])
    return Page[AuditEventOut](
        items=[AuditEventOut.model_validate(e) for e in events], next_cursor=next_cursor
    )


@router.get("/verify", response_model=AuditVerification)
def verify(session: SessionDep, project: ProjectDep) -> AuditVerification:
    report = verify_chain(session, project.id)
    return AuditVerification(
        ok=report.ok, events=report.events, first_bad_seq=report.first_bad_seq, message=report.message
    )
