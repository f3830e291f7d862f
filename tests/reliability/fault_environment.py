"""A whole private deployment for the fault tests: its own PostgreSQL cluster, Redis, SeaweedFS S3 behind the
fault proxy, a real `ctrlgenaug worker` process, and the API in-process; plus the checks every round ends
with (terminal state, objects and checksums, no duplicates, no orphans, audit chain, database ZIP)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from minio import Minio
from reliability_support import REPO, load_faultproxy
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from throwaway_servers import PostgresCluster, RedisServer, SeaweedS3

from api.main import create_app
from api.state import celery_sender
from migrations import upgrade
from store.audit import verify_chain
from store.db import build_engine, build_sessionmaker
from store.export import verify_database_zip
from store.jobs import clip_object_key, clip_preview_key, database_object_key, scores_object_key
from store.keys import create_api_key
from store.models import FINISHED_JOB_STATUSES, Clip, Job, JobStatus
from store.objects import S3ObjectStore
from store.registry import register_model
from store.settings import Settings
from store.sweeper import referenced_keys, sweep_orphans

NUM_CLASSES = 3
CLASSIFIER_NAME = "csn"
BUCKET = "ctrlgenaug-faults"
SECRET = "reliability-fault-tests-secret"
# Short enough that a round recovers in seconds, long enough for a tiny job's quiet phases under load.
WORKER_SETTINGS = {
    "CTRLGENAUG_WORKER_DEVICE": "cpu",
    "CTRLGENAUG_WORKER_BATCH_SIZE": "1",
    "CTRLGENAUG_TASK_TIME_LIMIT_S": "240",
    "CTRLGENAUG_BROKER_VISIBILITY_TIMEOUT_S": "300",
    "CTRLGENAUG_STALE_JOB_AFTER_S": "8",
    "CTRLGENAUG_OUTBOX_RELAY_INTERVAL_S": "1",
    "CTRLGENAUG_WORKER_RETRY_DELAY_S": "1",
    "CTRLGENAUG_WORKER_MAX_DELIVERIES": "8",
    "CTRLGENAUG_CANCEL_POLL_INTERVAL_S": "0.5",
    "CTRLGENAUG_PROGRESS_INTERVAL_S": "0",
}


def build_tiny_model_dir(model_dir: Path) -> Path:
    """The tiny generator plus a tiny semantic-filter classifier in `classifier/` (as the worker tests do)."""
    from classify.checkpoint import save_classifier
    from classify.registry import build_classifier, build_kwargs
    from generator.pipeline import build_tiny_pipeline

    pipeline = build_tiny_pipeline(num_classes=NUM_CLASSES)
    pipeline.save_pretrained(model_dir)
    save_classifier(
        model_dir / "classifier",
        build_classifier(CLASSIFIER_NAME, NUM_CLASSES, tiny=True),
        CLASSIFIER_NAME,
        {
            "num_classes": NUM_CLASSES,
            "in_channels": 1,
            "build_kwargs": build_kwargs(CLASSIFIER_NAME, tiny=True),
            "normalization": {"mean": 0.45, "std": 0.225},
            "class_names": list(pipeline.info.class_names),
            "frames": pipeline.info.num_frames,
        },
    )
    return model_dir


class WorkerProcess:
    """`ctrlgenaug worker` as a child process, its output appended to one log."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "worker", "--loglevel", "INFO"],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.running():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def tail(self, characters: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-characters:] if self.log.exists() else ""


@dataclass
class RoundRecord:
    fault: str
    trigger: str
    injected_during: str
    injected: int  # 1 per kill, restart or outage; for s3-errors the connections answered 503 or cut
    status: str
    seconds: float
    clips: int
    kept: int
    deliveries: int
    lost: int
    duplicates: int
    orphans: int
    error: str | None = None
    lost_clips: list[str] = field(default_factory=list)  # each lost clip and why (`lost_clip_reasons`)


@dataclass
class FaultEnvironment:
    root: Path
    postgres: PostgresCluster
    redis: RedisServer
    s3: SeaweedS3
    proxy: Any
    database_url: str
    sessions: sessionmaker[Session]
    store: S3ObjectStore
    worker: WorkerProcess
    api: TestClient
    headers: dict[str, str]
    model: str
    records: list[RoundRecord] = field(default_factory=list)

    def submit(self, seed: int, banks: int = 3, samples: int = 3, steps: int = 60) -> uuid.UUID:
        body = {
            "model": self.model,
            "banks": [
                {"class_label": f"class_{b % NUM_CLASSES}", "text": "a beating heart", "samples": samples}
                for b in range(banks)
            ],
            "sampler": {"name": "ddim", "steps": steps, "guidance_scale": 2.0},
            "seed": seed,
        }
        response = self.api.post("/v1/jobs", headers=self.headers, json=body)
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["id"])

    def job(self, job_id: uuid.UUID) -> Job:
        with self.sessions() as session:
            return session.get_one(Job, job_id)

    def clips_stored(self, job_id: uuid.UUID) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) or 0

    def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if condition():
                    return
            except Exception:  # noqa: BLE001 - the database itself may be the server under fault
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; worker log:\n{self.worker.tail()}")
            time.sleep(0.2)

    def wait_until_finished(self, job_id: uuid.UUID, timeout_s: float = 300) -> Job:
        self.wait_for(
            lambda: self.job(job_id).status in FINISHED_JOB_STATUSES, timeout_s, f"job {job_id} to end"
        )
        return self.job(job_id)


def open_fault_environment(root: Path) -> FaultEnvironment:
    """Start everything (the caller closes it with `close_fault_environment`)."""
    faultproxy = load_faultproxy()
    postgres = PostgresCluster()
    postgres.init()
    postgres.start()
    redis = RedisServer(root / "redis")
    redis.start()
    s3 = SeaweedS3(root / "s3")
    s3.start()
    proxy = faultproxy.FaultProxy(upstream_port=s3.s3_port).start()
    direct = Minio(
        f"127.0.0.1:{s3.s3_port}", access_key=s3.ACCESS_KEY, secret_key=s3.SECRET_KEY, secure=False
    )
    store = S3ObjectStore(direct, BUCKET)
    store.ensure_bucket()

    upgrade(postgres.url)
    sessions = build_sessionmaker(build_engine(postgres.url))
    model_dir = build_tiny_model_dir(root / "model")
    with sessions() as session:
        model = register_model(session, model_dir).name
        _, key = create_api_key(session, "faults")
        session.commit()

    service = {
        "CTRLGENAUG_ENVIRONMENT": "test",
        "CTRLGENAUG_SECRET_KEY": SECRET,
        "CTRLGENAUG_DATA_DIR": str(root / "data"),
        "CTRLGENAUG_DATABASE_URL": postgres.url,
        "CTRLGENAUG_BROKER_URL": redis.url,
        "CTRLGENAUG_S3_ENDPOINT": proxy.address,
        "CTRLGENAUG_S3_ACCESS_KEY": s3.ACCESS_KEY,
        "CTRLGENAUG_S3_SECRET_KEY": s3.SECRET_KEY,
        "CTRLGENAUG_S3_BUCKET": BUCKET,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTRLGENAUG_")}
    worker = WorkerProcess({**env, **service, **WORKER_SETTINGS, "OMP_NUM_THREADS": "1"}, root / "worker.log")
    worker.start()
    settings = Settings(
        **{name.removeprefix("CTRLGENAUG_").lower(): value for name, value in service.items()}  # type: ignore[arg-type]
    )
    app = create_app(settings, send_task=celery_sender(redis.url), check_broker=lambda: None)
    api = TestClient(app)
    return FaultEnvironment(
        root=root,
        postgres=postgres,
        redis=redis,
        s3=s3,
        proxy=proxy,
        database_url=postgres.url,
        sessions=sessions,
        store=store,
        worker=worker,
        api=api,
        headers={"Authorization": f"Bearer {key}"},
        model=model,
    )


def close_fault_environment(env: FaultEnvironment) -> None:
    env.worker.stop()
    env.api.app.state.service.sessionmaker.kw["bind"].dispose()  # type: ignore[attr-defined]
    env.sessions.kw["bind"].dispose()
    env.proxy.stop()
    env.s3.stop()
    env.redis.stop()
    env.postgres.destroy()


def expected_keys(job: Job) -> set[str]:
    keys = {
        key
        for bank in job.banks
        for i in range(bank.samples)
        for key in (clip_object_key(job.id, bank.index, i), clip_preview_key(job.id, bank.index, i, "gif"))
    }
    return keys | {scores_object_key(job.id), database_object_key(job.id)}


def lost_clip_reasons(env: FaultEnvironment, job: Job, clips: list[Clip]) -> list[str]:
    """One line per lost clip, naming it and why: a row whose object is missing or holds other bytes, or (for
    a succeeded job) a slot without a row, with its bank's status, the objects left under its keys, the job's
    deliveries and last error, and the worker log lines that mention it."""
    reasons = []
    for clip in clips:
        name = f"bank {clip.bank.index} clip {clip.index_in_bank} ({clip.object_key})"
        try:
            stored = env.store.get(clip.object_key)
        except KeyError:
            reasons.append(f"{name}: the row is committed but the object is missing")
            continue
        digest = hashlib.sha256(stored).hexdigest()
        if digest != clip.sha256 or len(stored) != clip.size_bytes:
            reasons.append(
                f"{name}: the object holds {len(stored)} bytes with SHA-256 {digest[:12]}, the row says "
                f"{clip.size_bytes} bytes with {clip.sha256[:12]}"
            )
    if job.status == JobStatus.succeeded:
        stored_slots = {(clip.bank.index, clip.index_in_bank) for clip in clips}
        log = env.worker.log.read_text(errors="replace").splitlines() if env.worker.log.exists() else []
        for bank in sorted(job.banks, key=lambda b: b.index):
            for index in sorted(set(range(bank.samples)) - {i for b, i in stored_slots if b == bank.index}):
                keys = (
                    clip_object_key(job.id, bank.index, index),
                    clip_preview_key(job.id, bank.index, index, "gif"),
                )
                left = [key for key in keys if env.store.exists(key)]
                mentions = [line for line in log if keys[0] in line][-3:]
                reasons.append(
                    f"bank {bank.index} clip {index} ({keys[0]}): no row, yet the job succeeded; bank status "
                    f"{bank.status.value}, objects left {left}, {job.deliveries} deliveries, last job error "
                    f"{job.error!r}; worker log: {mentions}"
                )
    return reasons


def check_round(env: FaultEnvironment, job_id: uuid.UUID) -> dict[str, Any]:
    """The invariants every faulted job must end with; returns the counts recorded in docs/reliability.md."""
    with env.sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.status in (JobStatus.succeeded, JobStatus.failed), job.status
        if job.status == JobStatus.failed:
            assert job.error, "a failed job must say why"
        clips = list(session.scalars(select(Clip).where(Clip.job_id == job_id)).all())
        slots = Counter((clip.bank_id, clip.index_in_bank) for clip in clips)
        duplicates = sum(n - 1 for n in slots.values())
        lost_clips = lost_clip_reasons(env, job, clips)
        lost = len(lost_clips)
        present = {info.key for info in env.store.list(f"jobs/{job_id}/")}
        orphans = sorted(present - referenced_keys(session))
        removed = sweep_orphans(env.store, session, min_age=timedelta(0))
        assert sorted(k for k in removed if k.startswith(f"jobs/{job_id}/")) == orphans
        assert sweep_orphans(env.store, session, min_age=timedelta(0)) == []
        chain = verify_chain(session, job.project_id)
        assert chain.ok, chain.message
        keys = expected_keys(job)
    assert present <= keys, sorted(present - keys)
    assert duplicates == 0
    assert lost == 0, "lost clips:\n" + "\n".join(lost_clips)
    if job.status == JobStatus.succeeded:
        assert orphans == [], orphans
        assert len(clips) == job.clips_total
        archive = env.root / f"{job_id}.zip"
        archive.write_bytes(env.store.get(job.database_object_key or ""))
        report = verify_database_zip(archive)
        assert report.ok and report.files_checked == job.clips_kept, report.errors
    return {
        "status": job.status.value,
        "clips": len(clips),
        "kept": job.clips_kept,
        "deliveries": job.deliveries,
        "lost": lost,
        "duplicates": duplicates,
        "orphans": len(orphans),
        "error": job.error,
        "lost_clips": lost_clips,
    }
