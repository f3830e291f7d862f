"""Job submission: one transaction with its outbox, idempotency, cancel, listing, banks from a dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import service_files as files
from fastapi.testclient import TestClient
from service_files import row_counts
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.job_planning import balanced_samples
from store.models import Bank, Job, JobStatus, OutboxMessage
from store.outbox import RUN_JOB_TASK, dispatch_outbox


@pytest.fixture
def headers(client: TestClient, make_key: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return make_key("jobs")


def submit(client: TestClient, headers: dict[str, str], body: dict[str, Any], **extra: str) -> Any:
    return client.post("/v1/jobs", headers={**headers, **extra}, json=body)


def test_job_row_banks_and_outbox_then_dispatch(
    client: TestClient, headers: dict[str, str], tiny_model: str, sessions: sessionmaker[Session], sender
) -> None:  # type: ignore[no-untyped-def]
    prior = client.post(
        "/v1/assets", headers=headers, files={"file": ("p.png", files.png())}, data={"kind": "image_prior"}
    ).json()
    body = {
        "model": tiny_model,
        "banks": [
            {"class_label": "class_1", "text": "a nodule", "image_prior_asset": prior["id"], "samples": 3},
            {"samples": 2},
        ],
        "sampler": {
            "name": "dpmsolver++",
            "steps": 20,
            "guidance_scale": 5.0,
            "guided_conditions": ["text", "image_prior"],
        },
        "seed": 7,
        "filter": {"alpha": 0.9, "scope": "job"},
    }
    response = submit(client, headers, body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["seed"] == 7 and job["model"] == tiny_model
    assert job["progress"]["banks_total"] == 2 and job["progress"]["clips_total"] == 5
    assert job["sampler"] == {
        "name": "dpmsolver++",
        "steps": 20,
        "guidance_scale": 5.0,
        "eta": 0.0,
        "guided_conditions": ["text", "image_prior"],
    }
    assert job["filter"]["alpha"] == 0.9 and job["filter"]["similarity_threshold"] == 0.98
    assert [(b["class_label"], b["class_index"], b["image_prior_asset"]) for b in job["banks"]] == [
        ("class_1", 1, prior["id"]),
        (None, None, None),
    ]
    assert sender.sent == [(RUN_JOB_TASK, {"job_id": job["id"]})]
    with sessions() as session:
        message = session.scalars(select(OutboxMessage)).one()
        assert message.dispatched_at is not None and str(message.job_id) == job["id"]
    assert client.get(f"/v1/jobs/{job['id']}", headers=headers).json()["banks"] == job["banks"]


def test_broker_down_keeps_the_job_and_a_pending_message(
    client: TestClient, headers: dict[str, str], tiny_model: str, sessions: sessionmaker[Session], sender
) -> None:  # type: ignore[no-untyped-def]
    sender.fail_with = ConnectionError("broker unreachable")
    response = submit(client, headers, {"model": tiny_model, "banks": [{"samples": 1}]})
    assert response.status_code == 202
    with sessions() as session:
        message = session.scalars(select(OutboxMessage)).one()
        assert message.dispatched_at is None and "broker unreachable" in (message.last_error or "")
        sender.fail_with = None
        assert dispatch_outbox(session, sender) == 1
        assert dispatch_outbox(session, sender) == 0
    assert sender.sent == [(RUN_JOB_TASK, {"job_id": response.json()["id"]})]


def test_idempotency_key_returns_the_same_job(
    client: TestClient, headers: dict[str, str], tiny_model: str, sessions: sessionmaker[Session], sender
) -> None:  # type: ignore[no-untyped-def]
    body = {"model": tiny_model, "banks": [{"class_label": "class_0", "samples": 2}], "seed": 3}
    first = submit(client, headers, body, **{"Idempotency-Key": "abc-1"})
    counts = row_counts(sessions)
    second = submit(client, headers, body, **{"Idempotency-Key": "abc-1"})
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert row_counts(sessions) == counts and len(sender.sent) == 1
    conflict = submit(client, headers, {**body, "seed": 4}, **{"Idempotency-Key": "abc-1"})
    assert conflict.status_code == 409
    assert conflict.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert submit(client, headers, body, **{"Idempotency-Key": "abc-2"}).json()["id"] != first.json()["id"]


def test_cancel_queued_job_then_conflict(
    client: TestClient, headers: dict[str, str], tiny_model: str
) -> None:
    job = submit(client, headers, {"model": tiny_model, "banks": [{"samples": 1}]}).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancel_requested"] is True
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert again.status_code == 409 and "already finished (cancelled)" in again.json()["detail"][0]["msg"]


def test_cancel_running_job_sets_the_flag_only(
    client: TestClient, headers: dict[str, str], tiny_model: str, sessions: sessionmaker[Session]
) -> None:
    job = submit(client, headers, {"model": tiny_model, "banks": [{"samples": 1}]}).json()
    with sessions() as session:
        session.get_one(Job, job["id"]).status = JobStatus.generating
        session.commit()
    body = client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).json()
    assert (body["status"], body["cancel_requested"]) == ("generating", True)


def test_list_jobs_paginates_and_filters(
    client: TestClient, headers: dict[str, str], tiny_model: str
) -> None:
    ids = [
        submit(client, headers, {"model": tiny_model, "banks": [{"samples": 1}]}).json()["id"]
        for _ in range(5)
    ]
    client.post(f"/v1/jobs/{ids[0]}/cancel", headers=headers)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/jobs", headers=headers, params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    queued = client.get("/v1/jobs", headers=headers, params={"status": "queued"}).json()["items"]
    assert {j["id"] for j in queued} == set(ids[1:])
    bad = client.get("/v1/jobs", headers=headers, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "cursor"]


def test_banks_from_dataset_use_training_clips_only(
    client: TestClient,
    headers: dict[str, str],
    tiny_model: str,
    tmp_path: Path,
    sessions: sessionmaker[Session],
) -> None:
    archive = files.data_build_zip(tmp_path / "build")
    created = client.post(
        "/v1/datasets", headers=headers, data={"name": "echo"}, files={"file": ("build.zip", archive)}
    )
    assert created.status_code == 201, created.text
    assert created.json()["training_clips"] == 3 and created.json()["class_names"] == ["class_0", "class_1"]
    duplicate = client.post(
        "/v1/datasets", headers=headers, data={"name": "echo"}, files={"file": ("build.zip", archive)}
    )
    assert duplicate.status_code == 422 and duplicate.json()["detail"][0]["loc"] == ["body", "name"]
    job = submit(
        client, headers, {"model": tiny_model, "banks_from": {"dataset": "echo", "samples_per_bank": 2}}
    )
    assert job.status_code == 202, job.text
    banks = job.json()["banks"]
    assert [(b["source_clip_id"], b["class_label"], b["samples"]) for b in banks] == [
        ("c0a", "class_0", 2),
        ("c0b", "class_0", 2),
        ("c1a", "class_1", 2),
    ]
    assert all(b["image_prior_asset"] and b["motion_asset"] and b["text"].endswith("clip") for b in banks)
    balanced = submit(
        client,
        headers,
        {
            "model": tiny_model,
            "banks_from": {"dataset": "echo", "samples_per_bank": 2, "balance_to_majority": True},
        },
    ).json()
    assert [b["samples"] for b in balanced["banks"]] == [2, 2, 5]
    only = submit(
        client,
        headers,
        {
            "model": tiny_model,
            "banks_from": {"dataset": "echo", "samples_per_bank": 1, "classes": ["class_1"]},
        },
    ).json()
    assert [b["source_clip_id"] for b in only["banks"]] == ["c1a"]
    with sessions() as session:
        assert "c1t" not in set(session.scalars(select(Bank.source_clip_id)))


def test_balanced_samples_reach_the_majority_total() -> None:
    plan = balanced_samples({"a": 4, "b": 1, "c": 3}, samples_per_bank=2)
    assert plan == {"a": [2, 2, 2, 2], "b": [11], "c": [3, 3, 3]}
    assert {name: count + sum(plan[name]) for name, count in {"a": 4, "b": 1, "c": 3}.items()} == {
        "a": 12,
        "b": 12,
        "c": 12,
    }
