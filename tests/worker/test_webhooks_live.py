"""Webhooks of the live embedded service (`ctrlgenaug up`: API + worker processes) to a local receiver: a
job's events arrive signed (checked with the snippet of docs/webhooks.md), filtered, and the one answered
500 is delivered on its retry; a webhook pointing at the service itself is a 422."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from webhook_receiver import WebhookReceiver, documented_verifier

from cli.embedded_client import EmbeddedService

WEBHOOK_ENV = {
    "OMP_NUM_THREADS": "1",
    "CTRLGENAUG_WORKER_DEVICE": "cpu",
    "CTRLGENAUG_WEBHOOK_ALLOW_PRIVATE_HOSTS": "true",
    "CTRLGENAUG_WEBHOOK_BACKOFF_BASE_S": "0.5",
    "CTRLGENAUG_WEBHOOK_POLL_INTERVAL_S": "0.2",
}


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
    return result


def test_a_live_service_posts_signed_filtered_events_and_retries_a_500(
    worker_model_dir: Path, tmp_path: Path
) -> None:
    verify = documented_verifier()
    with (
        WebhookReceiver([500]) as receiver,
        (tmp_path / "up.log").open("wb") as log,
        EmbeddedService(tmp_path / "data", worker_model_dir, WEBHOOK_ENV, stdout=log, stderr=log) as up,
        httpx.Client(base_url=up.url, timeout=30) as client,
    ):
        headers = {"Authorization": f"Bearer {up.create_key('webhooks')}"}
        body: dict[str, Any] = {
            "model": "tiny-ctrlgenaug",
            "banks": [{"class_label": "class_1", "samples": 2}],
            "sampler": {"name": "ddim", "steps": 2},
            "seed": 5,
        }
        itself = client.post(
            "/v1/jobs", headers=headers, json={**body, "webhook": {"url": f"{up.url}/v1/health"}}
        )
        assert itself.status_code == 422
        assert itself.json()["detail"] == [
            {
                "loc": ["body", "webhook", "url"],
                "msg": f"points at this service itself (127.0.0.1:{up.port})",
                "type": "value_error",
            }
        ]
        webhook = {"url": receiver.url, "events": ["started", "succeeded", "failed"]}
        submitted = client.post("/v1/jobs", headers=headers, json={**body, "webhook": webhook})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]

        def delivered() -> list[dict[str, Any]] | None:
            items = client.get(f"/v1/jobs/{job_id}/webhooks", headers=headers).json()["items"]
            done = len(items) == 2 and all(item["status"] == "delivered" for item in items)
            return items if done else None

        items = wait_for(delivered, 300, f"the job's deliveries (log {tmp_path / 'up.log'})")
        secret = client.get("/v1/webhook-secret", headers=headers).json()["secret"]
        status = client.get(f"/v1/jobs/{job_id}", headers=headers).json()["status"]

    assert status == "succeeded"
    assert {item["event"]: (item["attempts"], item["last_status_code"]) for item in items} == {
        "started": (2, 200),
        "succeeded": (1, 200),
    }
    received = [(r.headers["X-CtrlGenAug-Event"], r.status) for r in receiver.received]
    assert received == [("started", 500), ("started", 200), ("succeeded", 200)] or received == [
        ("started", 500),
        ("succeeded", 200),
        ("started", 200),
    ]
    assert all(verify(secret, r.headers, r.body) for r in receiver.received)
    assert {json.loads(r.body)["job"]["id"] for r in receiver.received} == {job_id}
