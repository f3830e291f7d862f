"""Concurrent writers of one project through a real server: no 5xx (the audit append once deadlocked two
job submissions on the project row), and the project's audit chain stays gap-free and verifiable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest
from reliability_support import UvicornServer, load_corpus, service_environment

from store.settings import Settings

SUBMISSIONS = 24
UPLOADS = 8


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
