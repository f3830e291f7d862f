"""Project isolation: another project's key gets 404 for every job, clip (and its frame strips), asset and
database; no key → 401."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
import service_files as files
from fastapi.testclient import TestClient
from service_files import write_clips_as_the_worker_does
from sqlalchemy.orm import Session, sessionmaker

from store.export import export_database
from store.models import Job
from store.objects import S3ObjectStore


@pytest.fixture
def project_a(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
) -> dict[str, str]:
    headers = make_key("alpha")
    asset = client.post(
        "/v1/assets", headers=headers, files={"file": ("a.png", files.png())}, data={"kind": "image_prior"}
    ).json()
    job = client.post(
        "/v1/jobs",
        headers=headers,
        json={"model": tiny_model, "banks": [{"image_prior_asset": asset["id"], "samples": 2}]},
    ).json()
    write_clips_as_the_worker_does(sessions, s3_store, job["id"], [True, True])
    with sessions() as session:
        export_database(session, s3_store, session.get_one(Job, uuid.UUID(job["id"])))
        session.commit()
    clip = client.get(f"/v1/jobs/{job['id']}/clips", headers=headers).json()["items"][0]
    return {"asset": asset["id"], "job": job["id"], "clip": clip["id"]}


def urls(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("GET", f"/v1/jobs/{ids['job']}"),
        ("POST", f"/v1/jobs/{ids['job']}/cancel"),
        ("GET", f"/v1/jobs/{ids['job']}/clips"),
        ("GET", f"/v1/jobs/{ids['job']}/database"),
        ("GET", f"/v1/jobs/{ids['job']}/database?presigned=1"),
        ("GET", f"/v1/clips/{ids['clip']}"),
        ("GET", f"/v1/clips/{ids['clip']}/strips/frames"),
        ("GET", f"/v1/clips/{ids['clip']}/strips/image_prior"),
        ("GET", f"/v1/assets/{ids['asset']}"),
    ]


def test_owner_sees_everything(
    client: TestClient, project_a: dict[str, str], make_key: Callable[[str], dict[str, str]]
) -> None:
    owner = make_key("alpha")
    for method, url in urls(project_a):
        if method == "GET":
            assert client.get(url, headers=owner).status_code == 200, url


def test_other_project_gets_404_everywhere(
    client: TestClient, project_a: dict[str, str], make_key: Callable[[str], dict[str, str]], tiny_model: str
) -> None:
    other = make_key("beta")
    for method, url in urls(project_a):
        response = client.request(method, url, headers=other)
        assert response.status_code == 404, (url, response.text)
        assert response.json()["detail"][0]["type"] == "not_found"
    assert client.get("/v1/jobs", headers=other).json()["items"] == []
    job = client.post(
        "/v1/jobs",
        headers=other,
        json={"model": tiny_model, "banks": [{"image_prior_asset": project_a["asset"], "samples": 1}]},
    )
    assert job.status_code == 422 and "not found in this project" in job.json()["detail"][0]["msg"]


@pytest.mark.parametrize("authorization", [None, "Bearer cga_not-a-key", "Basic dXNlcjpwYXNz"])
def test_missing_or_wrong_key_is_401(
    client: TestClient, project_a: dict[str, str], authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, url in [
        *urls(project_a),
        ("GET", "/v1/jobs"),
        ("GET", "/v1/audit/events"),
        ("POST", "/v1/jobs"),
    ]:
        response = client.request(method, url, headers=headers)
        assert response.status_code == 401, (url, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["detail"][0]["loc"] == ["header", "Authorization"]
