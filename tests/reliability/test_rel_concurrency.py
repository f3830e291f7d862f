"""Concurrent writers of one project through a real server: no 5xx (the audit append once deadlocked two
job submissions on the project row), and the project's audit chain stays gap-free and verifiable; the same
new bytes uploaded 8 times at once give one asset (content-addressed insert … on conflict do nothing), on
PostgreSQL + S3 and on the embedded SQLite + folder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from reliability_support import UvicornServer, load_corpus, service_environment
from sqlalchemy import text

from migrations import upgrade
from store.db import build_engine, build_sessionmaker
from store.keys import create_api_key
from store.settings import Settings

SUBMISSIONS = 24
UPLOADS = 8
SAME_BYTES_ROUNDS = 3


@pytest.fixture
def server(settings: Settings, tiny_model: str) -> Iterator[UvicornServer]:
    with UvicornServer(service_environment(settings)) as server:
        yield server


async def hammer(base_url: str, headers: dict[str, str], model: str) -> list[httpx.Response]:
    corpus = load_corpus()
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client:
        jobs = [
            client.post(
                "/v1/jobs",
                json={"model": model, "banks": [{"class_label": "class_1", "samples": 2}], "seed": n},
            )
            for n in range(SUBMISSIONS)
        ]
        uploads = [
            client.post(
                "/v1/assets",
                files={"file": (f"p{n}.png", corpus.png_image(16, seed=n))},
                data={"kind": "image_prior"},
            )
            for n in range(UPLOADS)
        ]
        return list(await asyncio.gather(*jobs, *uploads))


def test_concurrent_submissions_and_uploads_keep_one_chain(
    server: UvicornServer, make_key: Callable[[str], dict[str, str]], tiny_model: str
) -> None:
    headers = make_key("busy")
    responses = asyncio.run(hammer(server.url, headers, tiny_model))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * UPLOADS + [202] * SUBMISSIONS, [r.text for r in responses if r.is_error]
    with httpx.Client(base_url=server.url, headers=headers) as client:
        verification = client.get("/v1/audit/verify").json()
        events = client.get("/v1/audit/events", params={"limit": 500}).json()["items"]
    # api_key.created + one event per job and per asset
    assert verification == {
        "ok": True,
        "events": 1 + SUBMISSIONS + UPLOADS,
        "first_bad_seq": None,
        "message": f"{1 + SUBMISSIONS + UPLOADS} events verified",
    }
    assert [e["seq"] for e in events] == list(range(1, 2 + SUBMISSIONS + UPLOADS))
    assert sorted(e["kind"] for e in events).count("job.created") == SUBMISSIONS


async def upload_same_bytes(base_url: str, headers: dict[str, str], data: bytes) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        "/v1/assets", files={"file": (f"same{n}.png", data)}, data={"kind": "image_prior"}
                    )
                    for n in range(UPLOADS)
                )
            )
        )


def assert_one_asset_per_bytes(server: UvicornServer, headers: dict[str, str]) -> None:
    corpus = load_corpus()
    for round_ in range(SAME_BYTES_ROUNDS):
        data = corpus.png_image(24, seed=1000 + round_)
        responses = asyncio.run(upload_same_bytes(server.url, headers, data))
        assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses if r.is_error]
        assert len({r.json()["id"] for r in responses}) == 1
    with httpx.Client(base_url=server.url, headers=headers) as client:
        events = client.get("/v1/audit/events", params={"limit": 500}).json()["items"]
        assert client.get("/v1/audit/verify").json()["ok"] is True
        for response in responses:
            asset = client.get(f"/v1/assets/{response.json()['id']}")
            assert asset.status_code == 200 and asset.json()["size_bytes"] == len(data)
    assert [e["kind"] for e in events].count("asset.created") == SAME_BYTES_ROUNDS


def test_same_new_bytes_uploaded_concurrently_make_one_asset_on_postgres(
    settings: Settings, clean: None, make_key: Callable[[str], dict[str, str]], sessions: object
) -> None:
    headers = make_key("same-bytes")
    with UvicornServer(service_environment(settings)) as server:
        assert_one_asset_per_bytes(server, headers)
    with sessions() as session:  # type: ignore[operator]
        assert session.scalar(text("SELECT count(*) FROM assets")) == SAME_BYTES_ROUNDS


def test_same_new_bytes_uploaded_concurrently_make_one_asset_on_sqlite(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path / "data")
    upgrade(embedded.resolved_database_url)
    engine = build_engine(embedded.resolved_database_url)
    try:
        with build_sessionmaker(engine)() as session:
            _, key = create_api_key(session, "same-bytes")
            session.commit()
        env = {k: v for k, v in service_environment(embedded).items() if k != "CTRLGENAUG_ENVIRONMENT"}
        with UvicornServer(env) as server:
            assert_one_asset_per_bytes(server, {"Authorization": f"Bearer {key}"})
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT count(*) FROM assets")) == SAME_BYTES_ROUNDS
    finally:
        engine.dispose()
