"""Real Celery worker processes on Redis: a worker SIGKILLed mid-job is replaced by a fresh one, which
finishes the job after the broker redelivers it; every clip is stored exactly once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store.export import verify_database_zip
from store.models import Clip, Job, JobStatus
from store.outbox import RUN_JOB_TASK
from worker.celery_app import create_celery_app
from worker.context import WorkerContext
from worker.dispatch import send_via_celery

REPO = Path(__file__).resolve().parents[2]
TIME_LIMIT_S = 24.0
VISIBILITY_TIMEOUT_S = 26.0


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "worker", "--loglevel", "INFO"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.slow
def test_sigkilled_worker_is_replaced_and_every_clip_is_stored_once(
    context: WorkerContext, submit: Callable[..., uuid.UUID], services: dict[str, str], tmp_path: Path
) -> None:
    queue = f"ctrlgenaug-test-{uuid.uuid4().hex[:10]}"
    settings = context.settings.model_copy(
        update={
            "task_queue": queue,
            "worker_batch_size": 1,
            "task_time_limit_s": TIME_LIMIT_S,
            "broker_visibility_timeout_s": VISIBILITY_TIMEOUT_S,
        }
    )
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "CTRLGENAUG_ENVIRONMENT": "test",
        "CTRLGENAUG_SECRET_KEY": settings.secret_key.get_secret_value(),
        "CTRLGENAUG_DATA_DIR": str(tmp_path / "data"),
        "CTRLGENAUG_DATABASE_URL": settings.resolved_database_url,
        "CTRLGENAUG_BROKER_URL": services["CTRLGENAUG_TEST_REDIS_URL"],
        "CTRLGENAUG_S3_ENDPOINT": services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        "CTRLGENAUG_S3_ACCESS_KEY": services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        "CTRLGENAUG_S3_SECRET_KEY": services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        "CTRLGENAUG_S3_BUCKET": context.store.bucket,  # type: ignore[attr-defined]
        "CTRLGENAUG_TASK_QUEUE": queue,
        "CTRLGENAUG_WORKER_DEVICE": "cpu",
        "CTRLGENAUG_WORKER_BATCH_SIZE": "1",
        "CTRLGENAUG_TASK_TIME_LIMIT_S": str(TIME_LIMIT_S),
        "CTRLGENAUG_BROKER_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
        "CTRLGENAUG_STALE_JOB_AFTER_S": "3600",
    }
    job_id = submit(sampler={"name": "ddim", "steps": 25, "guidance_scale": 2.0})
    send_via_celery(create_celery_app(settings))(RUN_JOB_TASK, {"job_id": str(job_id)})

    def clip_count() -> int:
        with context.sessions() as session:
            return session.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) or 0

    def job() -> Job:
        with context.sessions() as session:
            return session.get_one(Job, job_id)

    log = tmp_path / "workers.log"
    first = start_worker(env, log)
    try:
        wait_for(lambda: clip_count() >= 2, 180, "the first worker's clips", log)
    finally:
        first.kill()
        first.wait()
    killed_at = clip_count()
    assert 2 <= killed_at < 6 and job().status == JobStatus.generating

    # Redis hands the unacknowledged message out again once its visibility timeout has passed
    started_at = job().started_at
    assert started_at is not None
    time.sleep(max(0.0, started_at.timestamp() + VISIBILITY_TIMEOUT_S + 1 - time.time()))
    second = start_worker(env, log)
    try:
        wait_for(lambda: job().status in (JobStatus.succeeded, JobStatus.failed), 240, "the job to end", log)
    finally:
        second.terminate()
        second.wait(60)
    finished = job()
    assert finished.status == JobStatus.succeeded, finished.error
    assert finished.deliveries == 2

    with context.sessions() as session:
        clips = session.scalars(select(Clip).where(Clip.job_id == job_id)).all()
        assert sorted((c.bank.index, c.index_in_bank) for c in clips) == [
            (b, i) for b in (0, 1) for i in range(3)
        ]
        for clip in clips:
            assert hashlib.sha256(context.store.get(clip.object_key)).hexdigest() == clip.sha256
    keys = sorted(info.key for info in context.store.list(f"jobs/{job_id}/"))
    assert len(keys) == 6 * 2 + 2  # NPZ + GIF per clip, S.npz, database.zip
    database = tmp_path / "database.zip"
    database.write_bytes(context.store.get(finished.database_object_key or ""))
    report = verify_database_zip(database)
    assert report.ok and report.files_checked == finished.clips_kept, report.errors
