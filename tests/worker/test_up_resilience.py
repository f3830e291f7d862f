"""The embedded service (`ctrlgenaug up`: SQLite, the local object folder, the embedded broker) with its
DEFAULT limits, under load: a cancel answers within 2 s while a job at the default job cap generates and
other clients poll and upload; a job whose worker is SIGKILLed `worker_max_deliveries` times ends `failed`
with the reason while the service keeps answering and starts a fresh worker each time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from load_clients import Load

from cli.embedded_client import EmbeddedService

CANCEL_ANSWER_S = 2.0
WORKER_MAX_DELIVERIES = 3  # the default


@pytest.fixture(scope="module")
def service(worker_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedService]:
    root = tmp_path_factory.mktemp("up")
    with (root / "up.log").open("wb") as log:
        embedded = EmbeddedService(
            root / "data",
            worker_model_dir,
            extra_env={"OMP_NUM_THREADS": "1", "CTRLGENAUG_WORKER_DEVICE": "cpu"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        with embedded:
            embedded.log = root / "up.log"  # type: ignore[attr-defined]
            yield embedded


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, service: EmbeddedService) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            log = service.log.read_text(errors="replace")[-4000:]  # type: ignore[attr-defined]
            raise AssertionError(f"timed out waiting for {what}; service log:\n{log}")
        time.sleep(0.2)


def test_cancel_answers_within_2_s_while_a_job_at_the_default_cap_generates_under_load(
    service: EmbeddedService,
) -> None:
    headers = {"Authorization": f"Bearer {service.create_key('busy')}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
        body = {  # 20,000 clips × 200 steps: the default max_job_clips and max_job_clip_steps
            "model": model_name(client),
            "banks": [{"class_label": "class_0", "samples": 1000}] * 20,
            "sampler": {"name": "ddim", "steps": 200},
            "seed": 3,
        }
        submitted = client.post("/v1/jobs", json=body)
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["progress"]["clips_total"] == 20_000
        job_id = submitted.json()["id"]

        def job() -> dict[str, Any]:
            return client.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

        wait_for(
            lambda: job()["progress"]["denoise_step"] > 0, 300, "the job to start denoising", service
        )
        with Load(service.url, headers, job_id) as load:
            time.sleep(3)
            started = time.monotonic()
            cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
            cancel_s = time.monotonic() - started
            wait_for(lambda: job()["status"] == "cancelled", 60, "the job to stop", service)
            stopped_s = time.monotonic() - started
        print(f"cancel answered in {cancel_s:.3f} s, job cancelled after {stopped_s:.1f} s, {load.summary()}")
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["cancel_requested"] is True
        assert cancel_s < CANCEL_ANSWER_S
        assert load.errors == []
        assert min(len(values) for values in load.latencies.values()) > 0


def model_name(client: httpx.Client) -> str:
    return str(client.get("/v1/models").json()[0]["name"])


def worker_pids(service: EmbeddedService) -> list[int]:
    assert service.process is not None
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == service.process.pid and b"worker" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_a_job_that_kills_its_worker_fails_and_the_service_survives(service: EmbeddedService) -> None:
    headers = {"Authorization": f"Bearer {service.create_key('poison')}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=60) as client:
        body = {
            "model": model_name(client),
            "banks": [{"class_label": "class_1", "samples": 64}],
            "sampler": {"name": "ddim", "steps": 200},
            "seed": 4,
        }
        job_id = client.post("/v1/jobs", json=body).json()["id"]

        def job() -> dict[str, Any]:
            return client.get(f"/v1/jobs/{job_id}").json()  # type: ignore[no-any-return]

        for kill in range(1, WORKER_MAX_DELIVERIES + 1):
            wait_for(
                lambda: job()["deliveries"] == kill and job()["progress"]["denoise_step"] > 0,  # noqa: B023
                300,
                f"delivery {kill} to sample",
                service,
            )
            (pid,) = worker_pids(service)
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: worker_pids(service) not in ([], [pid]), 60, "a fresh worker", service)  # noqa: B023
            assert client.get("/v1/ready").status_code == 200
        wait_for(lambda: job()["status"] == "failed", 300, "the poison job to fail", service)
        failed = job()
        assert failed["deliveries"] == WORKER_MAX_DELIVERIES + 1
        assert failed["error"] == (
            "poison job: delivered 4 times without finishing (worker_max_deliveries=3); last error: none "
            "recorded: its worker stopped during each delivery (killed, out of memory or crashed)"
        )
        assert service.process is not None and service.process.poll() is None
        log = service.log.read_text(errors="replace")  # type: ignore[attr-defined]
        assert log.count("the worker exited unexpectedly (code -9); starting it again") == 3

        small = {**body, "banks": [{"class_label": "class_1", "samples": 1}], "sampler": {"steps": 2}}
        after = client.post("/v1/jobs", json=small).json()["id"]
        wait_for(
            lambda: client.get(f"/v1/jobs/{after}").json()["status"] == "succeeded",
            300,
            "a job after the restarts",
            service,
        )
