"""Project isolation under generated ids, keys stored only as hashes, secrets that refuse their defaults."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError
from reliability_support import clip_npz, data_build_zip
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from store.export import export_database
from store.jobs import clip_object_key, clip_seed, upsert_clip
from store.keys import create_api_key, hash_api_key
from store.models import Base, Job, JobStatus
from store.objects import S3ObjectStore
from store.settings import Settings
from worker.settings import WorkerSettings

# (method, path template, the kind of id it takes, status the owner gets)
ID_ENDPOINTS = (
    ("GET", "/v1/assets/{}", "asset", 200),
    ("GET", "/v1/jobs/{}", "job", 200),
    ("POST", "/v1/jobs/{}/cancel", "job", 409),  # the owner's job has finished
    ("GET", "/v1/jobs/{}/clips", "job", 200),
    ("GET", "/v1/jobs/{}/database", "job", 200),
    ("GET", "/v1/jobs/{}/database?presigned=1", "job", 200),
    ("GET", "/v1/clips/{}", "clip", 200),
)


def finish_like_a_worker(sessions: sessionmaker[Session], store: S3ObjectStore, job_id: uuid.UUID) -> None:
    """What worker/ leaves for a succeeded job: one NPZ and row per clip, filter decisions, the database."""
    with sessions() as session:
        job = session.get_one(Job, job_id)
        for bank in job.banks:
            for i in range(bank.samples):
                seed = clip_seed(job.seed, bank.index, i)
                info = store.put(clip_object_key(job.id, bank.index, i), clip_npz(seed % 1000))
                upsert_clip(
                    session,
                    job_id=job.id,
                    bank_id=bank.id,
                    index_in_bank=i,
                    seed=seed,
                    object_key=info.key,
                    sha256=info.sha256,
                    size_bytes=info.size,
                    kept=True,
                )
        job.status = JobStatus.succeeded
        export_database(session, store, job)
        session.commit()


def make_project(
    client: TestClient,
    headers: dict[str, str],
    model: str,
    sessions: sessionmaker[Session],
    store: S3ObjectStore,
    seed: int,
) -> dict[str, list[str]]:
    """An asset, a dataset, a finished job with clips and a database; returns the ids by kind."""
    from reliability_support import load_corpus

    asset = client.post(
        "/v1/assets",
        headers=headers,
        files={"file": ("a.png", load_corpus().png_image(32, seed=seed))},
        data={"kind": "image_prior"},
    )
    assert asset.status_code == 201, asset.text
    dataset = client.post(
        "/v1/datasets",
        headers=headers,
        data={"name": f"set-{seed}"},
        files={"file": ("d.zip", data_build_zip(seed))},
    )
    assert dataset.status_code == 201, dataset.text
    job = client.post(
        "/v1/jobs",
        headers=headers,
        json={
            "model": model,
            "banks": [{"image_prior_asset": asset.json()["id"], "samples": 2}],
            "seed": seed,
        },
    )
    assert job.status_code == 202, job.text
    finish_like_a_worker(sessions, store, uuid.UUID(job.json()["id"]))
    clips = client.get(f"/v1/jobs/{job.json()['id']}/clips", headers=headers).json()["items"]
    return {
        "asset": [asset.json()["id"]],
        "job": [job.json()["id"]],
        "clip": [c["id"] for c in clips],
        "dataset": [dataset.json()["id"], dataset.json()["name"]],
    }


@pytest.fixture
def two_projects(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
) -> dict[str, Any]:
    headers = {"alpha": make_key("alpha"), "beta": make_key("beta")}
    ids = {
        name: make_project(client, headers[name], tiny_model, sessions, s3_store, seed)
        for seed, name in enumerate(headers)
    }
    return {"headers": headers, "ids": ids, "model": tiny_model}


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_ids_of_another_project_are_404_everywhere(
    data: st.DataObject, client: TestClient, two_projects: dict[str, Any]
) -> None:
    method, template, kind, owner_status = data.draw(st.sampled_from(ID_ENDPOINTS), label="endpoint")
    caller = data.draw(st.sampled_from(["alpha", "beta"]), label="caller")
    owner = data.draw(st.sampled_from(["alpha", "beta", "nobody"]), label="owner")
    if owner == "nobody":
        target = str(data.draw(st.uuids(), label="random id"))
    else:
        target = data.draw(st.sampled_from(two_projects["ids"][owner][kind]), label="id")
    response = client.request(method, template.format(target), headers=two_projects["headers"][caller])
    if owner == caller:
        assert response.status_code == owner_status, response.text
    else:
        assert response.status_code == 404, response.text
        assert response.json()["detail"][0]["type"] == "not_found"


@settings(
    max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_references_to_another_projects_assets_and_datasets_are_refused(
    data: st.DataObject, client: TestClient, two_projects: dict[str, Any]
) -> None:
    caller, other = data.draw(st.permutations(["alpha", "beta"]), label="caller, other")
    ids = two_projects["ids"][other]
    field = data.draw(st.sampled_from(["image_prior_asset", "motion_asset", "dataset"]), label="field")
    if field == "dataset":
        body: dict[str, Any] = {
            "banks_from": {"dataset": data.draw(st.sampled_from(ids["dataset"])), "samples_per_bank": 1}
        }
        loc = ["body", "banks_from", "dataset"]
    else:
        body = {"banks": [{field: ids["asset"][0], "samples": 1}]}
        loc = ["body", "banks", 0, field]
    response = client.post(
        "/v1/jobs", headers=two_projects["headers"][caller], json={"model": two_projects["model"], **body}
    )
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == loc and "not found in this project" in error["msg"]


def test_lists_and_audit_show_only_the_callers_project(
    client: TestClient, two_projects: dict[str, Any]
) -> None:
    for caller, other in (("alpha", "beta"), ("beta", "alpha")):
        headers = two_projects["headers"][caller]
        own, foreign = two_projects["ids"][caller], two_projects["ids"][other]
        assert [j["id"] for j in client.get("/v1/jobs", headers=headers).json()["items"]] == own["job"]
        assert [d["id"] for d in client.get("/v1/datasets", headers=headers).json()] == own["dataset"][:1]
        events = client.get("/v1/audit/events?limit=500", headers=headers).json()["items"]
        payloads = " ".join(str(e["payload"]) for e in events)
        assert own["job"][0] in payloads
        assert not any(foreign_id in payloads for foreign_id in foreign["job"] + foreign["asset"])
        assert client.get("/v1/audit/verify", headers=headers).json()["ok"] is True


def test_api_keys_are_stored_only_as_hashes(
    client: TestClient, sessions: sessionmaker[Session], two_projects: dict[str, Any]
) -> None:
    with sessions() as session:
        _, key = create_api_key(session, "hashed")
        session.commit()
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    plaintexts = [key] + [
        h["Authorization"].removeprefix("Bearer ") for h in two_projects["headers"].values()
    ]
    with sessions() as session:
        dump = "\n".join(
            row
            for table in Base.metadata.sorted_tables
            for row in session.scalars(text(f'SELECT t::text FROM "{table.name}" t'))
        )
        stored = set(session.scalars(text("SELECT key_hash FROM api_keys")))
    for plaintext in plaintexts:
        assert plaintext not in dump
        assert plaintext[12:] not in dump  # not even past the shown prefix
        assert hash_api_key(plaintext) == hashlib.sha256(plaintext.encode()).hexdigest()
        assert hash_api_key(plaintext) in stored


@pytest.mark.parametrize("settings_class", [Settings, WorkerSettings])
@pytest.mark.parametrize("environment", ["test", "production"])
def test_every_secret_refuses_its_default_outside_development(
    settings_class: type[Settings], environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each secret field, left at its built-in default while the others are set, is refused by name."""
    secrets = {
        name: "a-real-secret-value"
        for name, field in settings_class.model_fields.items()
        if field.annotation in (SecretStr, SecretStr | None)
    }
    assert set(secrets) >= {"secret_key", "s3_secret_key"}
    monkeypatch.setenv("CTRLGENAUG_ENVIRONMENT", environment)
    monkeypatch.setenv("CTRLGENAUG_S3_ENDPOINT", "minio:9000")
    for name in secrets:
        monkeypatch.delenv(f"CTRLGENAUG_{name.upper()}", raising=False)
        others = {other: value for other, value in secrets.items() if other != name}
        with pytest.raises(ValidationError, match=name):
            settings_class(**others)
    assert settings_class(**secrets).environment == environment
    monkeypatch.setenv("CTRLGENAUG_ENVIRONMENT", "development")
    monkeypatch.delenv("CTRLGENAUG_S3_ENDPOINT")
    assert settings_class().secret_key is None  # the embedded default makes its own (test_secrets.py)
