"""Job webhooks through the API on the real servers: the 422s of refused URLs, the job's webhook in its view,
the project's secret (made on first use, rotatable, stored as a salt only), and the delivery a cancelled
queued job leaves in the webhook outbox, filtered by the job's events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient
from service_fixtures import RecordingSender
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from api.schemas import WebhookEvent
from store.models import WEBHOOK_EVENTS, WebhookDelivery, WebhookSecret
from store.objects import S3ObjectStore
from store.settings import Settings

PUBLIC_PORT = 8123
PRIVATE = "is a loopback or private address (allowed only with webhook_allow_private_hosts)"
NOT_HTTP = "Value error, must be an http:// or https:// URL with a host"


@pytest.fixture
def private_client(
    clean: None, settings: Settings, s3_store: S3ObjectStore, sender: RecordingSender
) -> Iterator[TestClient]:
    """The app with webhook_allow_private_hosts on, published as http://localhost:8123."""
    allowing = settings.model_copy(
        update={"webhook_allow_private_hosts": True, "api_public_url": f"http://localhost:{PUBLIC_PORT}"}
    )
    app = create_app(allowing, object_store=s3_store, send_task=sender, check_broker=lambda: None)
    with TestClient(app) as test_client:
        yield test_client
    app.state.service.sessionmaker.kw["bind"].dispose()


def submit(client: TestClient, headers: dict[str, str], model: str, webhook: dict[str, Any]) -> Any:
    body = {
        "model": model,
        "banks": [{"class_label": "class_0", "samples": 1}],
        "sampler": {"steps": 2},
        "webhook": webhook,
    }
    return client.post("/v1/jobs", headers=headers, json=body)


def only_error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return dict(error)


def test_the_api_names_the_events_the_store_knows() -> None:
    assert get_args(WebhookEvent) == WEBHOOK_EVENTS


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.org/hook", NOT_HTTP),
        ("http:///hook", NOT_HTTP),
        ("http://example.org:99999/hook", "Value error, invalid port: Port out of range 0-65535"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a link-local or cloud metadata address",
        ),
        ("http://[fe80::1]/hook", "fe80::1 is a link-local or cloud metadata address"),
        ("http://0.0.0.0:9/hook", "0.0.0.0 is not a host address"),
        ("http://127.0.0.1:9/hook", f"127.0.0.1 {PRIVATE}"),
        ("http://localhost:9/hook", f"127.0.0.1 {PRIVATE}"),
        ("https://10.1.2.3/hook", f"10.1.2.3 {PRIVATE}"),
        ("http://no-such-host.invalid/hook", "host 'no-such-host.invalid' does not resolve"),
    ],
)
def test_a_refused_webhook_url_is_a_422_naming_the_field(
    client: TestClient, make_key: Callable[[str], dict[str, str]], tiny_model: str, url: str, message: str
) -> None:
    error = only_error(submit(client, make_key("p"), tiny_model, {"url": url}))
    assert error["loc"] == ["body", "webhook", "url"]
    assert error["msg"] == message


def test_private_hosts_when_allowed_but_never_the_service_itself_nor_metadata(
    private_client: TestClient, make_key: Callable[[str], dict[str, str]], tiny_model: str
) -> None:
    headers = make_key("p")
    itself = only_error(
        submit(private_client, headers, tiny_model, {"url": f"http://127.0.0.1:{PUBLIC_PORT}/h"})
    )
    assert itself == {
        "loc": ["body", "webhook", "url"],
        "msg": f"points at this service itself (localhost:{PUBLIC_PORT})",
        "type": "value_error",
    }
    metadata = only_error(submit(private_client, headers, tiny_model, {"url": "http://169.254.169.254/"}))
    assert metadata["msg"] == "169.254.169.254 is a link-local or cloud metadata address"
    accepted = submit(private_client, headers, tiny_model, {"url": f"http://127.0.0.1:{PUBLIC_PORT + 1}/h"})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["webhook"] == {
        "url": f"http://127.0.0.1:{PUBLIC_PORT + 1}/h",
        "events": sorted(WEBHOOK_EVENTS),
    }


@pytest.mark.parametrize(
    ("events", "loc", "kind"),
    [
        (["finished"], ["body", "webhook", "events", 0], "literal_error"),
        ([], ["body", "webhook", "events"], "too_short"),
    ],
)
def test_unknown_or_no_events_are_a_422(
    private_client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    tiny_model: str,
    events: list[str],
    loc: list[str | int],
    kind: str,
) -> None:
    webhook = {"url": "http://127.0.0.1:9/hook", "events": events}
    error = only_error(submit(private_client, make_key("p"), tiny_model, webhook))
    assert (error["loc"], error["type"]) == (loc, kind)


def test_the_secret_is_made_on_first_use_kept_rotated_and_stored_as_a_salt(
    private_client: TestClient, make_key: Callable[[str], dict[str, str]], sessions: sessionmaker[Session]
) -> None:
    headers, other = make_key("p"), make_key("q")
    first = private_client.get("/v1/webhook-secret", headers=headers).json()
    assert first["secret"].startswith("whsec_") and len(first["secret"]) == len("whsec_") + 43
    assert private_client.get("/v1/webhook-secret", headers=headers).json() == first
    assert private_client.get("/v1/webhook-secret", headers=other).json()["secret"] != first["secret"]
    rotated = private_client.post("/v1/webhook-secret/rotate", headers=headers).json()
    assert rotated["secret"] != first["secret"] and rotated["created_at"] > first["created_at"]
    assert private_client.get("/v1/webhook-secret", headers=headers).json() == rotated
    assert private_client.get("/v1/webhook-secret").status_code == 401
    with sessions() as session:
        stored = [(row.salt, row.project_id) for row in session.scalars(select(WebhookSecret))]
    assert len(stored) == 2 and all(rotated["secret"] not in salt for salt, _ in stored)
    kinds = [e["kind"] for e in private_client.get("/v1/audit/events", headers=headers).json()["items"]]
    assert kinds == ["api_key.created", "webhook_secret.created", "webhook_secret.rotated"]


def test_cancelling_a_queued_job_writes_a_cancelled_event_for_its_webhook(
    private_client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    tiny_model: str,
    sessions: sessionmaker[Session],
) -> None:
    headers = make_key("p")
    url = "http://127.0.0.1:9/hook"
    job = submit(private_client, headers, tiny_model, {"url": url, "events": ["started", "cancelled"]}).json()
    quiet = submit(private_client, headers, tiny_model, {"url": url, "events": ["succeeded"]}).json()
    for submitted in (job, quiet):
        assert private_client.post(f"/v1/jobs/{submitted['id']}/cancel", headers=headers).status_code == 202
    secret = private_client.get("/v1/webhook-secret", headers=headers).json()
    assert secret["secret"].startswith("whsec_")  # made when the first job named a webhook

    page = private_client.get(f"/v1/jobs/{job['id']}/webhooks", headers=headers).json()
    (delivery,) = page["items"]
    assert page["next_cursor"] is None
    assert {
        k: delivery[k] for k in ("event", "url", "status", "attempts", "last_status_code", "delivered_at")
    } == {
        "event": "cancelled",
        "url": url,
        "status": "pending",
        "attempts": 0,
        "last_status_code": None,
        "delivered_at": None,
    }
    assert delivery["next_attempt_at"] is not None
    assert private_client.get(f"/v1/jobs/{quiet['id']}/webhooks", headers=headers).json()["items"] == []
    with sessions() as session:
        body = json.loads(session.get_one(WebhookDelivery, uuid.UUID(delivery["id"])).body)
    assert body["id"] == delivery["id"] and body["event"] == "cancelled"
    assert body["job"]["id"] == job["id"] and body["job"]["status"] == "cancelled"
    assert body["job"]["finished_at"] is not None

    elsewhere = private_client.get(f"/v1/jobs/{job['id']}/webhooks", headers=make_key("q"))
    assert elsewhere.status_code == 404


def test_the_webhook_routes_have_readable_operation_ids(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ids = {
        (method, path): operation["operationId"]
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "webhook" in path
    }
    assert ids == {
        ("get", "/v1/jobs/{job_id}/webhooks"): "list_job_webhook_deliveries",
        ("get", "/v1/webhook-secret"): "get_webhook_secret",
        ("post", "/v1/webhook-secret/rotate"): "rotate_webhook_secret",
    }
