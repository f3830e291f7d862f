"""Job webhooks on the real servers (PostgreSQL, Redis, S3) with an in-process worker and a local receiver:
events signed as docs/webhooks.md says, filtered by the job's events, retried after a 500, failed past the
most attempts without holding up the job, and progress events rate-limited."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from webhook_receiver import WebhookReceiver, documented_verifier
from worker_helpers import worker_settings_for

from store.models import JobStatus, WebhookDelivery
from worker.context import WorkerContext
from worker.jobs import process_job
from worker.monitor import JobMonitor
from worker.settings import WorkerSettings
from worker.webhooks import backoff_s, deliver_due, httpx_poster

MAX_ATTEMPTS = 3


@pytest.fixture
def worker_settings(database_url: str, services: dict[str, str], tmp_path: Path) -> WorkerSettings:
    return worker_settings_for(
        database_url,
        services,
        tmp_path / "data",
        webhook_allow_private_hosts=True,
        webhook_backoff_base_s=0.05,
        webhook_backoff_max_s=0.2,
        webhook_max_attempts=MAX_ATTEMPTS,
        webhook_progress_interval_s=3600.0,
    )


def deliver_all(
    context: WorkerContext, settings: WorkerSettings | None = None, timeout_s: float = 30
) -> None:
    """Run the sender until no delivery is pending (what the worker's sender thread does)."""
    settings = settings or context.settings
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deliver_due(context.sessions, settings, httpx_poster(5.0))
        with context.sessions() as session:
            pending = session.scalars(
                select(WebhookDelivery).where(WebhookDelivery.status == "pending")
            ).all()
        if not pending:
            return
        time.sleep(0.02)
    raise AssertionError(f"deliveries still pending after {timeout_s} s")


def deliveries(api: TestClient, headers: dict[str, str], job_id: uuid.UUID) -> list[dict[str, Any]]:
    response = api.get(f"/v1/jobs/{job_id}/webhooks", headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_backoff_doubles_from_the_base_up_to_the_most() -> None:
    assert [backoff_s(n, 10, 3600) for n in (1, 2, 3, 4, 9, 20)] == [10, 20, 40, 80, 2560, 3600]


def test_events_are_signed_filtered_and_retried_after_a_500(
    context: WorkerContext, submit: Callable[..., uuid.UUID], api: TestClient, headers: dict[str, str]
) -> None:
    verify = documented_verifier()
    with WebhookReceiver([500]) as receiver:
        webhook = {"url": receiver.url, "events": ["started", "progress", "succeeded"]}
        job_id = submit(webhook=webhook)  # 6 clips x 3 steps, progress written at every step
        assert process_job(context, job_id) == JobStatus.succeeded
        deliver_all(context)
    secret = api.get("/v1/webhook-secret", headers=headers).json()["secret"]

    events = [(r.headers["X-CtrlGenAug-Event"], r.status) for r in receiver.received]
    assert events[0] == ("started", 500)  # the retry comes after its backoff, before or after the others
    assert sorted(events[1:]) == [("progress", 200), ("started", 200), ("succeeded", 200)]
    for request in receiver.received:
        assert request.path == "/hook" and request.headers["Content-Type"] == "application/json"
        assert verify(secret, request.headers, request.body)
        assert not verify(secret, request.headers, request.body.replace(b"}", b" }", 1))
        assert not verify(secret.replace("whsec_", "whsec_x"), request.headers, request.body)
        assert not verify(secret, request.headers, request.body, tolerance_s=-1)  # too old
    first, retried = (r for r in receiver.received if r.headers["X-CtrlGenAug-Event"] == "started")
    assert first.body == retried.body
    assert first.headers["X-CtrlGenAug-Delivery"] == retried.headers["X-CtrlGenAug-Delivery"]

    bodies = {r.headers["X-CtrlGenAug-Event"]: json.loads(r.body) for r in receiver.received}
    assert bodies["succeeded"]["job"]["status"] == "succeeded"
    assert bodies["succeeded"]["job"]["progress"]["clips_done"] == 6
    assert bodies["started"]["job"]["status"] == "generating" and bodies["started"]["job"]["id"] == str(
        job_id
    )
    assert bodies["progress"]["job"]["phase"] == "loading_model"  # the first write; the next 30 s later

    listed = {d["event"]: d for d in deliveries(api, headers, job_id)}
    assert {e: (d["status"], d["attempts"], d["last_status_code"]) for e, d in listed.items()} == {
        "started": ("delivered", 2, 200),
        "progress": ("delivered", 1, 200),
        "succeeded": ("delivered", 1, 200),
    }
    assert all(
        d["delivered_at"] and d["next_attempt_at"] is None and d["last_error"] is None
        for d in listed.values()
    )
    assert listed["started"]["id"] == first.headers["X-CtrlGenAug-Delivery"] == bodies["started"]["id"]


def test_a_delivery_failing_past_the_most_attempts_is_failed_and_the_job_is_not_held(
    context: WorkerContext, submit: Callable[..., uuid.UUID], api: TestClient, headers: dict[str, str]
) -> None:
    with WebhookReceiver(default_status=500) as receiver:
        job_id = submit(webhook={"url": receiver.url, "events": ["succeeded", "failed"]})
        assert process_job(context, job_id) == JobStatus.succeeded
        deliver_all(context)
    assert [(r.headers["X-CtrlGenAug-Event"], r.status) for r in receiver.received] == [
        ("succeeded", 500)
    ] * 3
    (delivery,) = deliveries(api, headers, job_id)
    assert {k: delivery[k] for k in ("status", "attempts", "last_status_code", "last_error")} == {
        "status": "failed",
        "attempts": MAX_ATTEMPTS,
        "last_status_code": 500,
        "last_error": "the receiver answered 500",
    }
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"] is None
    assert api.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"] == "succeeded"


def test_an_address_no_longer_allowed_at_delivery_time_fails_the_delivery(
    context: WorkerContext, submit: Callable[..., uuid.UUID], api: TestClient, headers: dict[str, str]
) -> None:
    with WebhookReceiver() as receiver:
        job_id = submit(webhook={"url": receiver.url, "events": ["cancelled"]})
        assert api.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
        strict = context.settings.model_copy(update={"webhook_allow_private_hosts": False})
        deliver_all(context, strict)
    assert receiver.received == []
    (delivery,) = deliveries(api, headers, job_id)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("failed", 1, None)
    assert delivery["last_error"] == (
        "refused: 127.0.0.1 is a loopback or private address (allowed only with webhook_allow_private_hosts)"
    )


def test_a_delivery_whose_job_is_deleted_mid_post_is_dropped(
    context: WorkerContext, submit: Callable[..., uuid.UUID], api: TestClient, headers: dict[str, str]
) -> None:
    job_id = submit(webhook={"url": "http://127.0.0.1:9/hook", "events": ["cancelled"]})
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=headers).status_code == 202
    posted: list[str] = []

    def delete_then_answer(url: str, body: bytes, headers_sent: dict[str, str]) -> int:
        posted.append(headers_sent["X-CtrlGenAug-Event"])
        assert api.delete(f"/v1/jobs/{job_id}", headers=headers).status_code == 200
        return 200

    assert deliver_due(context.sessions, context.settings, delete_then_answer) == 1
    assert posted == ["cancelled"]
    with context.sessions() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []


def test_progress_events_are_at_least_the_interval_apart(
    context: WorkerContext, submit: Callable[..., uuid.UUID]
) -> None:
    job_id = submit(webhook={"url": "http://127.0.0.1:9/hook", "events": ["progress"]})
    now = [0.0]
    monitor = JobMonitor(
        context.sessions,
        job_id,
        time_limit_s=3600,
        poll_interval_s=0,
        progress_interval_s=0,
        progress_event_interval_s=10,
        clock=lambda: now[0],
    )
    monitor.plan_sampling(batches=1)
    for step in range(1, 26):  # 25 steps written, one a second
        now[0] += 1
        monitor.step(step, 25)
    with context.sessions() as session:
        rows = session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.created_at)
        ).all()
    steps = [json.loads(row.body)["job"]["progress"]["denoise_step"] for row in rows]
    assert [row.event for row in rows] == ["progress"] * 3 and steps == [1, 11, 21]
