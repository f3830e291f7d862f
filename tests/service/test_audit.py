"""The audit hash chain verifies, and detects edits, deletions and re-ordering."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from store.audit import GENESIS_HASH, append_event, verify_chain
from store.keys import get_or_create_project
from store.models import AuditEvent


@pytest.fixture
def chain(clean: None, sessions: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    with sessions() as session:
        project = get_or_create_project(session, "auditee")
        for i in range(5):
            append_event(session, project.id, "test.event", {"i": i, "text": "ünïcode"})
        session.commit()
        return project.id


def test_chain_links_and_verifies(sessions: sessionmaker[Session], chain) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.project_id == chain).order_by(AuditEvent.seq)
        ).all()
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert events[0].prev_hash == GENESIS_HASH
        assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
        report = verify_chain(session, chain)
    assert (report.ok, report.events, report.first_bad_seq) == (True, 5, None)


@pytest.mark.parametrize(
    ("tamper", "bad_seq"),
    [
        (
            lambda pid: (
                update(AuditEvent)
                .where(AuditEvent.project_id == pid, AuditEvent.seq == 3)
                .values(payload={"i": 99, "text": "ünïcode"})
            ),
            3,
        ),
        (
            lambda pid: (
                update(AuditEvent)
                .where(AuditEvent.project_id == pid, AuditEvent.seq == 2)
                .values(kind="other.event")
            ),
            2,
        ),
        (lambda pid: delete(AuditEvent).where(AuditEvent.project_id == pid, AuditEvent.seq == 4), 5),
    ],
    ids=["payload edited", "kind edited", "event deleted"],
)
def test_tampering_is_detected(sessions: sessionmaker[Session], chain, tamper, bad_seq: int) -> None:  # type: ignore[no-untyped-def]
    with sessions() as session:
        session.execute(tamper(chain))
        session.commit()
        report = verify_chain(session, chain)
    assert not report.ok and report.first_bad_seq == bad_seq


def test_api_lists_events_and_verifies(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    sessions: sessionmaker[Session],
    tiny_model: str,
) -> None:
    headers = make_key("audited")
    for _ in range(3):
        client.post("/v1/jobs", headers=headers, json={"model": tiny_model, "banks": [{"samples": 1}]})
    first = client.get("/v1/audit/events", headers=headers, params={"limit": 2}).json()
    rest = client.get("/v1/audit/events", headers=headers, params={"cursor": first["next_cursor"]}).json()
    kinds = [e["kind"] for e in first["items"] + rest["items"]]
    assert kinds == ["api_key.created", "job.created", "job.created", "job.created"]
    assert client.get("/v1/audit/verify", headers=headers).json() == {
        "ok": True,
        "events": 4,
        "first_bad_seq": None,
        "message": "4 events verified",
    }
    with sessions() as session:
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.seq == 2, AuditEvent.kind == "job.created")
            .values(payload={"job_id": "forged"})
        )
        session.commit()
    verdict = client.get("/v1/audit/verify", headers=headers).json()
    assert verdict["ok"] is False and verdict["first_bad_seq"] == 2


def test_api_filters_events_by_kind_job_and_clip(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    sessions: sessionmaker[Session],
    tiny_model: str,
) -> None:
    headers = make_key("filtered")
    jobs = [
        client.post(
            "/v1/jobs", headers=headers, json={"model": tiny_model, "banks": [{"samples": 1}]}
        ).json()["id"]
        for _ in range(2)
    ]
    clip = str(uuid.uuid4())
    with sessions() as session:
        project = get_or_create_project(session, "filtered")
        append_event(session, project.id, "clip.stored", {"job_id": jobs[1], "clip_id": clip})
        session.commit()

    def events(**params: str) -> list[tuple[str, str | None]]:
        response = client.get("/v1/audit/events", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [(e["kind"], e["payload"].get("job_id")) for e in response.json()["items"]]

    assert events(kind="job.created") == [("job.created", jobs[0]), ("job.created", jobs[1])]
    assert events(job=jobs[1]) == [("job.created", jobs[1]), ("clip.stored", jobs[1])]
    assert events(clip=clip) == [("clip.stored", jobs[1])]
    assert events(kind="job.created", job=jobs[0]) == [("job.created", jobs[0])]
    assert events(kind="job.failed") == []
    unknown = client.get("/v1/audit/events", headers=headers, params={"knd": "job.created"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "knd"]
    for bad in ({"kind": "Job Created"}, {"job": "not-a-uuid"}):
        assert client.get("/v1/audit/events", headers=headers, params=bad).status_code == 422
