"""Worker commands: `worker` (a Celery worker, solo pool, one per GPU) and `up` (the embedded all-in-one
service: API + worker on SQLite, a local object folder and a broker file under CTRLGENAUG_DATA_DIR)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL_DIR = REPO_ROOT / "models" / "demo"
WORKER_STOP_TIMEOUT_S = 60


def register(app: typer.Typer) -> None:
    app.command("worker", help="Run a job worker (Celery, solo pool; start one per GPU).")(run_worker)
    app.command("up", help="Run the embedded all-in-one service (API + worker) under CTRLGENAUG_DATA_DIR.")(
        up
    )


def run_worker(
    device: Annotated[
        str | None,
        typer.Option(help="torch device: auto, cpu, cuda, cuda:N (default: CTRLGENAUG_WORKER_DEVICE)"),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
    hostname: Annotated[
        str | None, typer.Option(help="worker name (default: ctrlgenaug-<device>@<host>)")
    ] = None,
    requeue_unfinished: Annotated[
        bool, typer.Option(help="enqueue every unfinished job at start (no other worker may be running them)")
    ] = False,
) -> None:
    import logging
    from datetime import timedelta

    from cli.configuration import checked_settings
    from cli.database import ensure_migrated
    from worker.celery_app import create_celery_app
    from worker.dispatch import OutboxRelay, relay_once, requeue_stale_jobs
    from worker.retention import RetentionSweeper
    from worker.settings import WorkerSettings
    from worker.webhooks import WebhookSender

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("celery", "worker"):
        logging.getLogger(name).setLevel(loglevel.upper())
    settings = checked_settings(
        WorkerSettings if device is None else lambda: WorkerSettings(worker_device=device)
    )
    ensure_migrated(settings)
    app = create_celery_app(settings)
    context = app.ctrlgenaug_context.get()  # type: ignore[attr-defined]
    stale_after = timedelta(seconds=settings.stale_job_after_s)
    if requeue_unfinished:
        with context.sessions() as session:
            requeue_stale_jobs(session, stale_after, everything_unfinished=True)
    relay_once(context.sessions, context.send_task, stale_after)
    relay = OutboxRelay(context.sessions, context.send_task, settings.outbox_relay_interval_s, stale_after)
    relay.start()
    sweeper = RetentionSweeper(context.sessions, context.store, settings.retention_sweep_interval_s)
    sweeper.start()
    sender = WebhookSender(context.sessions, settings)
    sender.start()
    name = hostname or f"ctrlgenaug-{settings.worker_device.replace(':', '')}@%h"
    try:
        app.worker_main(
            [
                "worker",
                "--pool=solo",
                "--concurrency=1",
                f"--loglevel={loglevel}",
                f"--hostname={name}",
                "--without-mingle",
                "--without-gossip",
            ]
        )
    finally:
        sweeper.stop()
        sender.stop()
        relay.stop()


def _ensure_model(model: Path | None) -> str:
    from sqlalchemy import select

    from store.db import build_engine, build_sessionmaker
    from store.models import ModelRecord
    from store.registry import register_model
    from store.settings import get_settings

    engine = build_engine(get_settings().resolved_database_url)
    try:
        with build_sessionmaker(engine)() as session:
            registered = session.scalars(select(ModelRecord.name)).all()
            if model is None and registered:
                return f"models registered: {', '.join(sorted(set(registered)))}"
            path = model or DEMO_MODEL_DIR
            if not path.is_dir():
                raise typer.BadParameter(
                    f"no model is registered and the demo model {path} does not exist; build it with "
                    "`make train-demo` or pass --model PATH (a model directory)",
                    param_hint="--model",
                )
            try:
                record = register_model(session, path)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--model") from exc
            session.commit()
            return f"model {record.name} {record.version} registered from {path}"
    finally:
        engine.dispose()


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def up(
    port: Annotated[int, typer.Option(help="TCP port of the API")] = 8000,
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    model: Annotated[
        Path | None,
        typer.Option(exists=True, file_okay=False, help="model directory to register (default: models/demo)"),
    ] = None,
    device: Annotated[str | None, typer.Option(help="torch device of the worker")] = None,
) -> None:
    import uvicorn

    from cli.configuration import checked_settings
    from cli.ready_banner import announce_when_ready
    from cli.worker_supervisor import WorkerSupervisor
    from migrations import upgrade
    from store.settings import get_settings

    settings = checked_settings(get_settings)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url)
    typer.echo(f"database at head: {settings.resolved_database_url}", err=True)
    typer.echo(_ensure_model(model), err=True)
    env = {**os.environ, "CTRLGENAUG_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "cli.main", "worker", "--requeue-unfinished"]
    worker = WorkerSupervisor(
        command + (["--device", device] if device else []), env, lambda line: typer.echo(line, err=True)
    )
    worker.start()
    typer.echo(f"Ctrl-GenAug on http://{host}:{port} (data in {data_dir}); Ctrl-C stops it", err=True)
    announce_when_ready(host, port, data_dir, lambda line: typer.echo(line, err=True))
    # uvicorn re-raises the SIGTERM it stopped on: as an exception it runs the `finally` that stops the worker
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run("api.main:app_from_environment", factory=True, host=host, port=port)
    finally:
        code = worker.stop(WORKER_STOP_TIMEOUT_S)
        typer.echo(f"worker stopped (code {code})", err=True)
