"""Health, readiness against the real servers, and an OpenAPI document with typed responses."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from store.objects import S3ObjectStore
from store.settings import Settings


def test_health_and_ready_on_real_servers(client: TestClient) -> None:
    assert client.get("/v1/health").json() == {"status": "ok"}
    ready = client.get("/v1/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        n: {"ok": True, "error": None} for n in ("database", "broker", "storage")
    }


def test_ready_reports_the_failing_dependency(
    clean: None, settings: Settings, s3_store: S3ObjectStore
) -> None:
    def broker_down() -> None:
        raise ConnectionError("redis refused")

    app = create_app(settings, object_store=s3_store, send_task=lambda t, p: None, check_broker=broker_down)
    with TestClient(app) as client:
        response = client.get("/v1/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["broker"] == {"ok": False, "error": "ConnectionError: redis refused"}
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]


def test_openapi_declares_auth_and_typed_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            success = {c: r for c, r in operation["responses"].items() if c.startswith("2")}
            schemas = [
                r.get("content", {}).get("application/json", {}).get("schema") for r in success.values()
            ]
            media = {kind for r in success.values() for kind in r.get("content", {})} - {"application/json"}
            if path not in ("/metrics", "/v1/objects/{key}") and not any(schemas) and not media:
                untyped.append(f"{method.upper()} {path}")
    assert untyped == []
    errors = spec["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"401", "404", "422", "409"} <= set(errors)


def test_an_unexpected_error_is_a_json_500_with_a_reference_and_no_internals(
    clean: None, settings: Settings, s3_store: S3ObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings, object_store=s3_store, send_task=lambda t, p: None)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret connection string postgres://user:pw@db")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/boom")
    assert response.status_code == 500
    [error] = response.json()["detail"]
    assert error["type"] == "internal_error" and error["loc"] == []
    assert "secret" not in response.text and "RuntimeError" not in response.text
    reference = error["msg"].split("reference ")[1].split(";")[0]
    assert len(reference) == 12
    assert any(reference in r.getMessage() and r.exc_info for r in caplog.records)


def test_docs_are_served_from_the_installed_package_without_internet(client: TestClient) -> None:
    page = client.get("/docs").text
    scripts = re.findall(r'<script src="([^"]+)"', page) + re.findall(r'<link [^>]*href="([^"]+)"', page)
    assert scripts and all(url.startswith("/docs-assets/") for url in scripts), scripts
    for url in scripts:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000, url
    redoc = client.get("/redoc").text
    assert all(url.startswith("/docs-assets/") for url in re.findall(r'<script src="([^"]+)"', redoc))


def test_every_operation_has_a_description_and_an_example_request(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            name = f"{method.upper()} {path}"
            assert "Example request:" in operation.get("description", ""), name
            (sample,) = operation["x-codeSamples"]
            assert sample["source"].startswith("curl ") and path.split("{")[0].rstrip("/") in sample["source"]
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "example" in media:
                    assert media["example"]["model"], name
    job_body = spec["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert {"model", "banks", "sampler"} <= set(job_body["example"])


def test_the_root_leads_to_the_console(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console"
    assert client.get("/").url.path == "/console/jobs"
