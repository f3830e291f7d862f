"""Transactional outbox: task messages are rows committed with the job, then dispatched to the broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import OutboxMessage, utcnow

RUN_JOB_TASK = "ctrlgenaug.run_job"

TaskSender = Callable[[str, dict[str, Any]], None]


def add_message(
    session: Session, task: str, payload: dict[str, Any], job_id: uuid.UUID | None = None
) -> OutboxMessage:
    message = OutboxMessage(task=task, payload=payload, job_id=job_id)
    session.add(message)
    return message


def dispatch_outbox(session: Session, send: TaskSender, limit: int = 100) -> int:
    """Send undispatched messages in order, mark them dispatched and commit; returns how many were sent.

    Delivery is at-least-once (a crash between send and commit re-sends), so tasks must be idempotent.
    A message whose send fails stays pending with its error recorded.
    """
    messages = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.dispatched_at.is_(None))
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sent = 0
    for message in messages:
        message.attempts += 1
        try:
            send(message.task, message.payload)
        except Exception as exc:  # noqa: BLE001 - any broker failure leaves the message pending
            message.last_error = f"{type(exc).__name__}: {exc}"
            continue
        message.dispatched_at = utcnow()
        message.last_error = None
        sent += 1
    session.commit()
    return sent
