"""Job events for webhooks: a delivery row is added to the session of the status change it reports (the
webhook outbox), and the worker's sender POSTs it (worker.webhooks)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from store.models import WEBHOOK_EVENTS, Job, WebhookDelivery, utcnow


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    # SQLite hands timestamps back without a zone; every stored timestamp is UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def job_snapshot(job: Job) -> dict[str, Any]:
    """What an event says about its job."""
    return {
        "id": str(job.id),
        "status": job.status.value,
        "phase": job.phase.value if job.phase is not None else None,
        "progress": {
            "banks_done": job.banks_done,
            "banks_total": job.banks_total,
            "clips_done": job.clips_done,
            "clips_total": job.clips_total,
            "denoise_step": job.denoise_step,
            "denoise_steps": job.denoise_steps,
            "eta_seconds": job.eta_seconds,
        },
        "clips_kept": job.clips_kept,
        "error": job.error,
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
    }


def add_event(session: Session, job: Job, event: str) -> WebhookDelivery | None:
    """Add a delivery of `event` when the job has a webhook that takes it (the caller commits it with the
    change it reports); returns the row, or None."""
    assert event in WEBHOOK_EVENTS, event
    if job.webhook_url is None or event not in (job.webhook_events or ()):
        return None
    delivery_id = uuid.uuid4()
    now = utcnow()
    body = {"id": str(delivery_id), "event": event, "created_at": _iso(now), "job": job_snapshot(job)}
    delivery = WebhookDelivery(
        id=delivery_id,
        project_id=job.project_id,
        job_id=job.id,
        event=event,
        url=job.webhook_url,
        body=json.dumps(body, separators=(",", ":"), allow_nan=False),
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    return delivery
