"""Webhooks: the deliveries of a job's events, and the project's signing secret (docs/webhooks.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select, tuple_

from api.deps import JobsWriteProjectDep, ProjectDep, SessionDep, StateDep
from api.errors import ERROR_RESPONSES, field_error
from api.pagination import decode_cursor, encode_cursor
from api.routers.jobs import project_job
from api.schemas import Page, WebhookDeliveryOut, WebhookSecretOut
from store.models import WebhookDelivery
from store.webhook_secrets import rotate_webhook_secret, webhook_secret

router = APIRouter(tags=["webhooks"], responses=ERROR_RESPONSES)


@router.get(
    "/v1/jobs/{job_id}/webhooks",
    response_model=Page[WebhookDeliveryOut],
    operation_id="list_job_webhook_deliveries",
)
def list_job_webhook_deliveries(
    job_id: uuid.UUID,
    session: SessionDep,
    project: ProjectDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[WebhookDeliveryOut]:
    """The job's webhook deliveries, oldest first: event, status (pending, delivered, failed), attempts, the
    receiver's last status code and error, the next attempt and when it was delivered."""
    job = project_job(session, project, job_id)
    query = select(WebhookDelivery).where(WebhookDelivery.job_id == job.id)
    if cursor is not None:
        created, delivery_id = decode_cursor(cursor, 2)
        try:
            query = query.where(
                tuple_(WebhookDelivery.created_at, WebhookDelivery.id)
                > (datetime.fromisoformat(created), uuid.UUID(delivery_id))
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise field_error(422, ["query", "cursor"], "malformed cursor") from exc
    order = (WebhookDelivery.created_at, WebhookDelivery.id)
    deliveries = list(session.scalars(query.order_by(*order).limit(limit + 1)))
    next_cursor = None
    if len(deliveries) > limit:
        deliveries = deliveries[:limit]
        next_cursor = encode_cursor([deliveries[-1].created_at.isoformat(), str(deliveries[-1].id)])
    return Page[WebhookDeliveryOut](
        items=[WebhookDeliveryOut.model_validate(d) for d in deliveries], next_cursor=next_cursor
    )


@router.get("/v1/webhook-secret", response_model=WebhookSecretOut, operation_id="get_webhook_secret")
def get_webhook_secret(
    session: SessionDep, project: JobsWriteProjectDep, state: StateDep
) -> WebhookSecretOut:
    """The project's webhook secret (made on first use): verify each delivery's X-CtrlGenAug-Signature, an
    HMAC-SHA256 of `<X-CtrlGenAug-Timestamp>.<body>` (docs/webhooks.md)."""
    secret, created_at = webhook_secret(session, project.id, state.signing_secret)
    session.commit()
    return WebhookSecretOut(secret=secret, created_at=created_at)


@router.post(
    "/v1/webhook-secret/rotate", response_model=WebhookSecretOut, operation_id="rotate_webhook_secret"
)
def rotate_secret(session: SessionDep, project: JobsWriteProjectDep, state: StateDep) -> WebhookSecretOut:
    """Replace the project's webhook secret: every delivery attempt from now on is signed with the new one."""
    secret, created_at = rotate_webhook_secret(session, project.id, state.signing_secret)
    session.commit()
    return WebhookSecretOut(secret=secret, created_at=created_at)
