"""Cancel under load on the server shape (`make test`: PostgreSQL, Redis, S3, uvicorn, a Celery worker
process) with the DEFAULT limits: while a job at the default job cap generates and writes its clips and
other clients poll and upload, `POST /v1/jobs/{id}/cancel` answers within 2 s and the job stops."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fault_environment import WorkerProcess, build_tiny_model_dir
from load_clients import Load
from reliability_support import UvicornServer, service_environment
from sqlalchemy.orm import Session, sessionmaker
from throwaway_servers import RedisServer

from store.objects import S3ObjectStore
from store.registry import register_model
from store.settings import Settings

CANCEL_ANSWER_S = 2.0
STOP_S = 60.0


@pytest.fixture
def model(clean: None, sessions: sessionmaker[Session], tmp_path: Path) -> str:
    """The tiny generator with the tiny classifier of its semantic filter, registered; returns its name."""
    with sessions() as session:
        name = register_model(session, build_tiny_model_dir(tmp_path / "model")).name
        session.commit()
    return name


@pytest.fixture
def deployment(
    model: str,
    database_url: str,
    services: dict[str, str],
    settings_secret: str,
    s3_store: S3ObjectStore,
    tmp_path: Path,
) -> Iterator[tuple[UvicornServer, WorkerProcess]]:
    """The API and a worker with every limit and interval at its default, on a Redis of their own (its default
    queue)."""
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    settings = Settings(
        environment="test",
        secret_key=settings_secret,
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=redis.url,
        s3_endpoint=services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        s3_access_key=services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        s3_secret_key=services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        s3_bucket=s3_store.bucket,
    )
    env = service_environment(settings)
    # batches of 2 clips (not a limit): clips are written every few seconds while the next batch denoises
    worker_env = {
        "CTRLGENAUG_WORKER_DEVICE": "cpu",
        "CTRLGENAUG_WORKER_BATCH_SIZE": "2",
        "OMP_NUM_THREADS": "1",
    }
    worker = WorkerProcess({**env, **worker_env}, tmp_path / "worker.log")
    try:
        with UvicornServer(env) as api:
            worker.start()
            try:
                yield api, worker
            finally:
                worker.stop()
    finally:
        redis.stop()


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, worker: WorkerProcess) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{worker.tail()}")
        time.sleep(0.2)


def test_cancel_answers_within_2_s_while_a_job_generates_and_writes_under_load(
    deployment: tuple[UvicornServer, WorkerProcess],
    model: str,
    make_key: Callable[[str], dict[str, str]],
) -> None:
    api, worker = deployment
    headers = make_key("busy")
    with httpx.Client(base_url=api.url, headers=headers, timeout=60) as client:
        body = {  # 20,000 clips × 200 steps: the default max_job_clips and max_job_clip_steps
            "model": model,
            "banks": [{"class_label": "class_0", "samples": 1000}] * 20,
            "sampler": {"name": "ddim", "steps": 200},
            "seed": 3,
        }
        submitted = client.post("/v1/jobs", json=body)
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["progress"]["clips_total"] == 20_000
        job_id = submitted.json()["id"]

        def job() -> dict[str, Any]:
            body = client.get(f"/v1/jobs/{job_id}").json()
            assert body["status"] != "failed", body["error"]
            return body  # type: ignore[no-any-return]

        # generating and writing: a first batch stored, the next one denoising
        wait_for(lambda: job()["progress"]["clips_done"] > 0, 420, "the job's first clips", worker)
        with Load(api.url, headers, job_id) as load:
            time.sleep(3)
            before = job()["progress"]
            started = time.monotonic()
            cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
            cancel_s = time.monotonic() - started
            wait_for(lambda: job()["status"] == "cancelled", STOP_S, "the job to stop", worker)
            stopped_s = time.monotonic() - started
        print(
            f"cancel answered in {cancel_s:.3f} s, job cancelled after {stopped_s:.1f} s "
            f"(clips {before['clips_done']}, step {before['denoise_step']} when cancelled), {load.summary()}"
        )
        assert cancelled.status_code == 202, cancelled.text
        assert cancelled.json()["cancel_requested"] is True
        assert cancel_s < CANCEL_ANSWER_S
        assert load.errors == []
        assert min(len(values) for values in load.latencies.values()) > 0
        final = job()
        assert final["status"] == "cancelled" and 0 < final["progress"]["clips_done"] < 20_000
