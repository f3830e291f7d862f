"""API key scopes: an auditor key (read + audit:read) reads jobs, provenance, the audit log and downloads but
cannot submit, cancel, upload or delete (403 naming the missing scope); a revoked key is a 401 on its next
request; a rotated key's replacement keeps its scopes; key events are links of the audit chain."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from service_files import png, write_clips_as_the_worker_does
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.audit import verify_chain
from store.export import export_database
from store.keys import (
    AUDITOR_SCOPES,
    JOBS_WRITE,
    SCOPES,
    create_api_key,
    find_project,
    revoke_api_key,
    rotate_api_key,
)
from store.models import ApiKey, AuditEvent, Job
from store.objects import S3ObjectStore

Headers = dict[str, str]


def bearer(key: str) -> Headers:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def key_of(sessions: sessionmaker[Session]) -> Callable[..., tuple[uuid.UUID, str]]:
    """A new key of the project with these scopes: (its id, the plaintext key)."""

    def make(project: str, scopes: tuple[str, ...]) -> tuple[uuid.UUID, str]:
        with sessions() as session:
            row, key = create_api_key(session, project, scopes)
            session.commit()
            return row.id, key

    return make


@pytest.fixture
def finished_job(
    client: TestClient,
    make_key: Callable[[str], Headers],
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
) -> str:
    """A succeeded, exported job of project "audited", submitted with a full key."""
    body = {"model": tiny_model, "banks": [{"class_label": "class_0", "samples": 2}]}
    job_id = client.post("/v1/jobs", headers=make_key("audited"), json=body).json()["id"]
    write_clips_as_the_worker_does(sessions, s3_store, job_id, [True, False])
    with sessions() as session:
        export_database(session, s3_store, session.get_one(Job, uuid.UUID(job_id)))
        session.commit()
    return job_id


def missing_scope(response, scope: str, held: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 403, response.text
    assert response.json()["detail"] == [
        {
            "loc": ["header", "Authorization"],
            "msg": f"this API key lacks the scope {scope} (it has {held})",
            "type": "missing_scope",
        }
    ]


def test_an_auditor_key_reads_provenance_audit_and_downloads(
    client: TestClient, key_of, finished_job: str, tiny_model: str
) -> None:  # type: ignore[no-untyped-def]
    _, key = key_of("audited", AUDITOR_SCOPES)
    auditor = bearer(key)
    assert client.get(f"/v1/jobs/{finished_job}", headers=auditor).json()["status"] == "succeeded"
    clips = client.get(f"/v1/jobs/{finished_job}/clips", headers=auditor).json()["items"]
    assert len(clips) == 2
    provenance = client.get(f"/v1/clips/{clips[0]['id']}", headers=auditor).json()["provenance"]
    assert provenance["job"]["id"] == finished_job
    download = client.get(f"/v1/jobs/{finished_job}/database", headers=auditor)
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    kinds = [e["kind"] for e in client.get("/v1/audit/events", headers=auditor).json()["items"]]
    assert kinds == ["api_key.created", "job.created", "api_key.created"]
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True

    held = "read, audit:read"
    body = {"model": tiny_model, "banks": [{"samples": 1}]}
    missing_scope(client.post("/v1/jobs", headers=auditor, json=body), "jobs:write", held)
    missing_scope(client.post(f"/v1/jobs/{finished_job}/cancel", headers=auditor), "jobs:write", held)
    missing_scope(client.delete(f"/v1/jobs/{finished_job}", headers=auditor), "jobs:write", held)
    upload = client.post(
        "/v1/assets", headers=auditor, files={"file": ("p.png", png())}, data={"kind": "image_prior"}
    )
    missing_scope(upload, "jobs:write", held)


def test_a_write_only_key_cannot_read_jobs_or_the_audit_log(
    client: TestClient, key_of, tiny_model: str
) -> None:  # type: ignore[no-untyped-def]
    _, key = key_of("writer", (JOBS_WRITE,))
    writer = bearer(key)
    submitted = client.post("/v1/jobs", headers=writer, json={"model": tiny_model, "banks": [{"samples": 1}]})
    assert submitted.status_code == 202, submitted.text
    missing_scope(client.get("/v1/jobs", headers=writer), "read", "jobs:write")
    missing_scope(client.get("/v1/audit/events", headers=writer), "audit:read", "jobs:write")


def test_a_revoked_key_is_refused_on_its_next_request(
    client: TestClient, key_of, sessions: sessionmaker[Session]
) -> None:  # type: ignore[no-untyped-def]
    key_id, key = key_of("revoking", AUDITOR_SCOPES)
    assert client.get("/v1/jobs", headers=bearer(key)).status_code == 200
    with sessions() as session:
        revoke_api_key(session, session.get_one(ApiKey, key_id))
        session.commit()
    refused = client.get("/v1/jobs", headers=bearer(key))
    assert refused.status_code == 401
    assert refused.json()["detail"][0]["msg"] == "invalid or revoked API key"


def test_rotation_keeps_the_scopes_and_every_key_event_is_in_the_chain(
    client: TestClient, key_of, sessions: sessionmaker[Session]
) -> None:  # type: ignore[no-untyped-def]
    key_id, old = key_of("rotating", AUDITOR_SCOPES)
    with sessions() as session:
        new_row, new = rotate_api_key(session, session.get_one(ApiKey, key_id))
        session.commit()
        new_id, new_prefix = new_row.id, new_row.prefix
    assert client.get("/v1/jobs", headers=bearer(old)).status_code == 401
    assert client.get("/v1/jobs", headers=bearer(new)).status_code == 200
    missing_scope(client.post("/v1/jobs", headers=bearer(new), json={}), "jobs:write", "read, audit:read")
    with sessions() as session:
        with pytest.raises(ValueError, match="is revoked; create a new key instead"):
            rotate_api_key(session, session.get_one(ApiKey, key_id))
        with pytest.raises(ValueError, match="was already revoked at"):
            revoke_api_key(session, session.get_one(ApiKey, key_id))
        revoke_api_key(session, session.get_one(ApiKey, new_id))
        session.commit()
        project = find_project(session, "rotating")
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.project_id == project.id).order_by(AuditEvent.seq)
        ).all()
        assert [(e.kind, e.payload.get("key_id")) for e in events] == [
            ("api_key.created", str(key_id)),
            ("api_key.rotated", str(key_id)),
            ("api_key.revoked", str(new_id)),
        ]
        assert events[0].payload["scopes"] == ["read", "audit:read"]
        assert events[1].payload["new_prefix"] == new_prefix
        assert events[1].payload["scopes"] == ["read", "audit:read"]
        assert verify_chain(session, project.id).ok


def test_unknown_or_no_scopes_are_refused(sessions: sessionmaker[Session], clean: None) -> None:
    with sessions() as session:
        with pytest.raises(
            ValueError, match=r"^scope: unknown admin; the scopes are jobs:write, read, audit:read$"
        ):
            create_api_key(session, "p", ("read", "admin"))
        with pytest.raises(ValueError, match=r"^scope: a key needs at least one of"):
            create_api_key(session, "p", ())


def test_every_keyed_operation_needs_exactly_one_scope_and_writes_need_jobs_write(
    client: TestClient, key_of
) -> None:  # type: ignore[no-untyped-def]
    """Each operation that takes a key is called with three keys of one scope each: exactly one is let
    through (the others get a 403 naming the scope the operation needs)."""
    keys = {scope: bearer(key_of("scoped", (scope,))[1]) for scope in SCOPES}
    needs: dict[str, str] = {}
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        url = re.sub(r"\{kind\}", "frames", re.sub(r"\{\w+_id\}", str(uuid.uuid4()), path))
        for method, operation in operations.items():
            if not operation.get("security"):
                continue
            allowed = []
            for scope, headers in keys.items():
                response = client.request(method, url, headers=headers)
                refused = (
                    response.status_code == 403 and response.json()["detail"][0]["type"] == "missing_scope"
                )
                if not refused:
                    allowed.append(scope)
            assert len(allowed) == 1, (method, path, allowed)
            needs[f"{method.upper()} {path}"] = allowed[0]
    writes = {name: scope for name, scope in needs.items() if not name.startswith("GET ")}
    assert {name for name, scope in writes.items() if scope != "jobs:write"} == set()
    assert {
        "POST /v1/jobs",
        "POST /v1/assets",
        "DELETE /v1/assets/{asset_id}",
        "DELETE /v1/jobs/{job_id}",
    } <= set(writes)
    assert needs["GET /v1/audit/events"] == needs["GET /v1/audit/verify"] == "audit:read"
    assert needs["GET /v1/jobs/{job_id}/database"] == needs["GET /v1/clips/{clip_id}"] == "read"
