"""Retention: DELETE /v1/assets/{id} and DELETE /v1/jobs/{id} take objects, rows and previews away, keep the
checksums in provenance and the audit chain, and refuse (409) what a job still to run needs; the worker's
retention sweep deletes a project's uploaded assets past its retention and leaves nothing orphaned in the
bucket or the database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import service_files as files
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from store.audit import verify_chain
from store.export import export_database
from store.keys import find_project
from store.models import Asset, AuditEvent, Bank, Clip, DatasetClip, Job, JobStatus, OutboxMessage, utcnow
from store.objects import S3ObjectStore
from store.retention import job_object_prefix, set_asset_retention
from store.sweeper import referenced_keys
from worker.retention import RetentionSweeper

Headers = dict[str, str]


@pytest.fixture
def headers(make_key: Callable[[str], Headers], tiny_model: str) -> Headers:
    return make_key("retained")


def upload_prior(client: TestClient, headers: Headers, seed: int) -> dict:  # type: ignore[type-arg]
    response = client.post(
        "/v1/assets",
        headers=headers,
        files={"file": ("p.png", files.png(seed=seed))},
        data={"kind": "image_prior"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def submit_with_prior(client: TestClient, headers: Headers, model: str, asset_id: str) -> str:
    body = {"model": model, "banks": [{"image_prior_asset": asset_id, "samples": 2}]}
    response = client.post("/v1/jobs", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def last_event(sessions: sessionmaker[Session], kind: str) -> AuditEvent:
    with sessions() as session:
        return session.scalars(
            select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.id)
        ).all()[-1]


def conflict(response, msg: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 409, response.text
    [error] = response.json()["detail"]
    assert (error["loc"][0], error["msg"], error["type"]) == ("path", msg, "conflict")


def test_an_asset_is_refused_while_its_job_is_to_run_then_deleted_keeping_its_checksum(
    client: TestClient,
    headers: Headers,
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
    make_key: Callable[[str], Headers],
) -> None:
    asset = upload_prior(client, headers, seed=1)
    job_id = submit_with_prior(client, headers, tiny_model, asset["id"])
    url = f"/v1/assets/{asset['id']}"
    conflict(
        client.delete(url, headers=headers),
        f"asset is used by job {job_id}, which is queued; delete it when the job has ended",
    )
    assert client.delete(url, headers=make_key("other")).status_code == 404

    write_clips = files.write_clips_as_the_worker_does
    write_clips(sessions, s3_store, job_id, [True, False])
    with sessions() as session:
        asset_keys = {a.object_key for a in session.scalars(select(Asset))} | {
            a.array_object_key for a in session.scalars(select(Asset))
        }
    deleted = client.delete(url, headers=headers)
    assert deleted.status_code == 200, deleted.text
    event = last_event(sessions, "asset.deleted")
    assert deleted.json() == {"id": asset["id"], "objects_deleted": 2, "audit_seq": event.seq}
    assert event.payload == {
        "asset_id": asset["id"],
        "kind": "image_prior",
        "sha256": asset["sha256"],
        "reason": "request",
        "banks": 1,
    }
    assert not asset_keys & set(files.bucket_keys(s3_store))
    assert client.get(url, headers=headers).status_code == 404
    assert client.delete(url, headers=headers).status_code == 404

    clip_id = client.get(f"/v1/jobs/{job_id}/clips", headers=headers).json()["items"][0]["id"]
    provenance = client.get(f"/v1/clips/{clip_id}", headers=headers).json()["provenance"]
    assert provenance["conditions"]["image_prior"] == {"sha256": asset["sha256"], "deleted": True}
    assert client.get(f"/v1/clips/{clip_id}/strips/image_prior", headers=headers).status_code == 404
    assert client.get("/v1/audit/verify", headers=headers).json()["ok"] is True


def test_a_finished_job_is_deleted_with_its_objects_and_rows_and_a_running_one_is_refused(
    client: TestClient,
    headers: Headers,
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
) -> None:
    asset = upload_prior(client, headers, seed=2)
    job_id = submit_with_prior(client, headers, tiny_model, asset["id"])
    url = f"/v1/jobs/{job_id}"
    cancel_hint = f"cancel it (POST /v1/jobs/{job_id}/cancel) and delete it once it is cancelled"
    conflict(client.delete(url, headers=headers), f"job is queued; {cancel_hint}")
    with sessions() as session:
        session.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(status=JobStatus.generating))
        session.commit()
    conflict(client.delete(url, headers=headers), f"job is generating; {cancel_hint}")

    files.write_clips_as_the_worker_does(sessions, s3_store, job_id, [True, False])
    with sessions() as session:
        job = session.get_one(Job, uuid.UUID(job_id))
        export_database(session, s3_store, job)
        session.commit()
        database_sha256 = job.database_sha256
        clips = {str(c.id): c.sha256 for c in session.scalars(select(Clip).where(Clip.job_id == job.id))}
    before = files.bucket_keys(s3_store)
    job_keys = [k for k in before if k.startswith(job_object_prefix(uuid.UUID(job_id)))]
    assert len(job_keys) == 5  # 2 clips, 2 previews, the database

    deleted = client.delete(url, headers=headers)
    assert deleted.status_code == 200, deleted.text
    event = last_event(sessions, "job.deleted")
    assert deleted.json() == {"id": job_id, "objects_deleted": 5, "audit_seq": event.seq}
    assert event.payload["clips"] == clips and len(clips) == 2
    assert event.payload["database_sha256"] == database_sha256
    assert event.payload["status"] == "succeeded"
    assert files.bucket_keys(s3_store) == sorted(set(before) - set(job_keys))
    with sessions() as session:
        for model in (Job, Bank, Clip, OutboxMessage):
            assert session.scalar(select(func.count()).select_from(model)) == 0, model
    assert client.get(url, headers=headers).status_code == 404
    assert client.get(f"/v1/assets/{asset['id']}", headers=headers).status_code == 200
    assert client.get("/v1/audit/verify", headers=headers).json()["ok"] is True
    assert client.delete(f"/v1/assets/{asset['id']}", headers=headers).status_code == 200


def test_the_sweep_deletes_expired_uploads_only_and_leaves_nothing_orphaned(
    client: TestClient,
    headers: Headers,
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
    make_key: Callable[[str], Headers],
    tmp_path: Path,
) -> None:
    expired_unused = upload_prior(client, headers, seed=10)
    expired_queued = upload_prior(client, headers, seed=11)
    expired_finished = upload_prior(client, headers, seed=12)
    fresh = upload_prior(client, headers, seed=13)
    elsewhere = upload_prior(client, make_key("keeps-everything"), seed=14)
    registered = client.post(
        "/v1/datasets",
        headers=headers,
        data={"name": "build"},
        files={"file": ("build.zip", files.data_build_zip(tmp_path / "build"))},
    )
    assert registered.status_code == 201, registered.text
    queued_job = submit_with_prior(client, headers, tiny_model, expired_queued["id"])
    finished_job = submit_with_prior(client, headers, tiny_model, expired_finished["id"])
    files.write_clips_as_the_worker_does(sessions, s3_store, finished_job, [True, True])
    with sessions() as session:
        set_asset_retention(session, find_project(session, "retained"), 30)
        long_ago = utcnow() - timedelta(days=31)
        dataset_assets = {
            str(asset_id)
            for row in session.execute(select(DatasetClip.image_prior_asset_id, DatasetClip.motion_asset_id))
            for asset_id in row
        }
        old = [expired_unused, expired_queued, expired_finished, elsewhere]
        old_ids = [uuid.UUID(a["id"]) for a in old] + [uuid.UUID(a) for a in dataset_assets]
        session.execute(update(Asset).where(Asset.id.in_(old_ids)).values(created_at=long_ago))
        session.commit()

    sweeper = RetentionSweeper(sessions, s3_store, interval_s=0.2)
    sweeper.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sessions() as session:
                if session.get(Asset, uuid.UUID(expired_finished["id"])) is None:
                    break
            time.sleep(0.2)
    finally:
        sweeper.stop()
        sweeper.join(timeout=30)

    with sessions() as session:
        remaining = {str(a) for a in session.scalars(select(Asset.id))}
        assert remaining == {expired_queued["id"], fresh["id"], elsewhere["id"]} | dataset_assets
        bank = session.scalars(select(Bank).where(Bank.job_id == uuid.UUID(finished_job))).one()
        assert (bank.image_prior_asset_id, bank.image_prior_sha256) == (None, expired_finished["sha256"])
        referenced = referenced_keys(session)
        reasons = {
            e.payload["asset_id"]: e.payload["reason"]
            for e in session.scalars(select(AuditEvent).where(AuditEvent.kind == "asset.deleted"))
        }
        assert reasons == {
            a["id"]: "retention: older than 30 days" for a in (expired_unused, expired_finished)
        }
        assert verify_chain(session, find_project(session, "retained").id).ok
    bucket = set(files.bucket_keys(s3_store))
    assert bucket <= referenced, bucket - referenced  # no object without a row
    assert {k for k in referenced if not k.endswith("/S.npz")} <= bucket  # no row without its object
    assert client.get(f"/v1/jobs/{queued_job}", headers=headers).json()["status"] == "queued"
    dataset_asset = next(iter(dataset_assets))
    conflict(
        client.delete(f"/v1/assets/{dataset_asset}", headers=headers),
        "asset is a training clip's condition in dataset 'build'",
    )
