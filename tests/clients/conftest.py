"""A live embedded service (`ctrlgenaug up`: SQLite, local object folder, in-process worker) on a free port
with the tiny model, one project key and a registered data build; the client and the jobs CLI run
against it over HTTP. One `banks_from` job is run once per session and shared (read-only) by the tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_service import DATASET, PROJECT, TINY_SAMPLER, LiveService

from cli.embedded_client import EmbeddedService

# The tiny model with its semantic-filter classifier and the tiny data build are the worker tests' helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "worker"))
from worker_helpers import build_tiny_data_build, build_tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    root = tmp_path_factory.mktemp("live")
    model_dir = build_tiny_model_dir(root / "model")
    build_tiny_data_build(root / DATASET)
    log = root / "up.log"
    with (
        log.open("wb") as out,
        EmbeddedService(
            root / "data", model_dir, {"OMP_NUM_THREADS": "1"}, stdout=out, stderr=out
        ) as service,
    ):
        key = service.create_key(PROJECT)
        registered = service.ctrlgenaug(
            "datasets", "register", str(root / DATASET / "manifest.jsonl"), "--project", PROJECT
        )
        assert registered.returncode == 0, registered.stderr
        patients = {f"c{c}{m}": f"p{c}{m}" for c in range(3) for m in range(2)}
        yield LiveService(service, service.url, key, "tiny-ctrlgenaug", patients)


@pytest.fixture(scope="session")
def finished_job(live: LiveService) -> str:
    """A `banks_from` job (one bank per training clip, 2 clips each), finished."""
    from client import Client

    with Client(live.url, live.key) as client:
        job = client.submit(
            {
                "model": live.model,
                "banks_from": {"dataset": DATASET, "samples_per_bank": 2},
                "sampler": TINY_SAMPLER,
                "seed": 3,
            }
        )
        finished = client.wait(str(job.id), poll_s=0.5, timeout_s=600, progress=False)
    assert finished.status.value == "succeeded", finished.error
    return str(job.id)


@pytest.fixture(autouse=True)
def _no_client_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests give the URL and key explicitly unless they test the variables."""
    for name in ("CTRLGENAUG_URL", "CTRLGENAUG_API_KEY"):
        monkeypatch.delenv(name, raising=False)
