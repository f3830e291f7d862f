"""Load on the REST API over loopback: job submissions, then status polls, from concurrent clients.

Starts its own servers so nothing shared is touched: a fresh PostgreSQL database (on `--postgres`, by default
the test server of scripts/services.env), a private redis-server on a free port as the broker, and the API
under uvicorn. Registers the tiny generator (`generator.pipeline.build_tiny_pipeline`). No worker runs: the
jobs are only committed and queued (outbox → Redis), which is what submission and polling exercise. Prints a
markdown table of latencies and checks: no errors, every job row committed, every message on the queue.

    .venv/bin/python benchmarks/bench_load.py --jobs 200 --polls 10000 --clients 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
from sqlalchemy.engine import make_url

from cli.embedded_client import free_port, stop

REPO = Path(__file__).resolve().parents[1]
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def wait_for_port(port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not open port {port} in {timeout_s} s")


@contextmanager
def private_redis(folder: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 30, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = f"ctrlgenaug_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare_service(database_url: str, model_dir: Path) -> tuple[str, str]:
    """Migrate, register the tiny model, make a key; returns (model name, API key)."""
    from generator.pipeline import build_tiny_pipeline
    from migrations import upgrade
    from store.db import build_engine, build_sessionmaker
    from store.keys import create_api_key
    from store.registry import register_model

    upgrade(database_url)
    build_tiny_pipeline(num_classes=3).save_pretrained(model_dir)
    engine = build_engine(database_url)
    with build_sessionmaker(engine)() as session:
        model = register_model(session, model_dir).name
        _, key = create_api_key(session, "load")
        session.commit()
    engine.dispose()
    return model, key


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def row(self) -> str:
        ms = np.asarray(self.latencies) * 1000
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        rate = len(self.latencies) / self.seconds
        return (
            f"| {self.name} | {len(self.latencies)} | {len(self.errors)} | {p50:.1f} | {p90:.1f} | "
            f"{p99:.1f} | {ms.max():.1f} | {rate:.0f} |"
        )


async def timed(
    client: httpx.AsyncClient, phase: Phase, method: str, url: str, **kwargs: object
) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        phase.errors.append(f"{method} {url}: {type(exc).__name__}: {exc}")
        return None
    phase.latencies.append(time.perf_counter() - started)
    if response.is_error:
        phase.errors.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
    return response


async def run_load(
    base_url: str, key: str, model: str, jobs: int, polls: int, clients: int
) -> tuple[Phase, Phase, list[str]]:
    headers = {"Authorization": f"Bearer {key}"}
    submit, poll = Phase("submit `POST /v1/jobs`"), Phase("poll `GET /v1/jobs/{id}`")
    job_ids: list[str] = []
    sessions = [httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) for _ in range(clients)]

    async def submitter(client: httpx.AsyncClient, numbers: range) -> None:
        for n in numbers:
            body = {
                "model": model,
                "banks": [
                    {"class_label": f"class_{b % 3}", "text": "a beating heart", "samples": 4}
                    for b in range(3)
                ],
                "sampler": {"name": "ddim", "steps": 5},
                "seed": n,
            }
            response = await timed(
                client, submit, "POST", "/v1/jobs", json=body, headers={"Idempotency-Key": f"load-{n}"}
            )
            if response is not None and response.status_code == 202:
                job_ids.append(response.json()["id"])

    async def poller(client: httpx.AsyncClient, numbers: range) -> None:
        for n in numbers:
            await timed(client, poll, "GET", f"/v1/jobs/{job_ids[n % len(job_ids)]}")

    try:
        started = time.perf_counter()
        await asyncio.gather(*(submitter(c, range(i, jobs, clients)) for i, c in enumerate(sessions)))
        submit.seconds = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(poller(c, range(i, polls, clients)) for i, c in enumerate(sessions)))
        poll.seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in sessions))
    return submit, poll, job_ids


def check_outcome(database_url: str, broker_url: str, job_ids: list[str], jobs: int) -> list[str]:
    """Every submitted job committed once, queued, its message on the broker."""
    import redis
    from sqlalchemy import func, select

    from store.db import build_engine, build_sessionmaker
    from store.models import Job, JobStatus, OutboxMessage

    problems = []
    engine = build_engine(database_url)
    with build_sessionmaker(engine)() as session:
        rows = session.scalar(select(func.count()).select_from(Job))
        queued = session.scalar(select(func.count()).select_from(Job).where(Job.status == JobStatus.queued))
        pending = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.dispatched_at.is_(None))
        )
    engine.dispose()
    on_queue = redis.Redis.from_url(broker_url).llen("celery")
    if len(set(job_ids)) != jobs:
        problems.append(f"{len(set(job_ids))} distinct job ids answered for {jobs} submissions")
    if (rows, queued) != (jobs, jobs):
        problems.append(f"{rows} job rows, {queued} queued; expected {jobs}")
    if pending:
        problems.append(f"{pending} outbox messages not dispatched")
    if on_queue != jobs:
        problems.append(f"{on_queue} messages on the broker queue; expected {jobs}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--polls", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CTRLGENAUG_TEST_DATABASE_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL server URL whose user may create databases",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ctrlgenaug-load-"))
    try:
        with fresh_database(args.postgres) as database_url, private_redis(folder) as broker_url:
            model, key = prepare_service(database_url, folder / "model")
            port = free_port()
            env = {
                **os.environ,
                "CTRLGENAUG_ENVIRONMENT": "test",
                "CTRLGENAUG_SECRET_KEY": uuid.uuid4().hex,
                "CTRLGENAUG_DATA_DIR": str(folder / "data"),
                "CTRLGENAUG_DATABASE_URL": database_url,
                "CTRLGENAUG_BROKER_URL": broker_url,
            }
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "api.main:app_from_environment", "--factory",
                 "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.api_workers),
                 "--log-level", "warning", "--no-access-log"],
                env=env, cwd=REPO,
            )  # fmt: skip
            try:
                wait_for_port(port, 120, "uvicorn")
                submit, poll, job_ids = asyncio.run(
                    run_load(f"http://127.0.0.1:{port}", key, model, args.jobs, args.polls, args.clients)
                )
            finally:
                stop(server)
            problems = check_outcome(database_url, broker_url, job_ids, args.jobs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; {args.clients} clients, {args.api_workers} uvicorn worker(s), "
        "PostgreSQL + Redis on loopback\n"
    )
    print("| phase | requests | errors | p50 ms | p90 ms | p99 ms | max ms | req/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print(submit.row())
    print(poll.row())
    for error in (submit.errors + poll.errors)[:10]:
        print(f"error: {error}")
    for problem in problems:
        print(f"problem: {problem}")
    if submit.errors or poll.errors or problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
