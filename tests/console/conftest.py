"""Console tests: the real app under uvicorn (on the REAL PostgreSQL/Redis/S3 test servers, the shared
fixtures of tests/support/service_fixtures.py), G2's worker task run in process on a background thread with
the tiny model, and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from console_helpers import TESTS, Console, load_test_module
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, sync_playwright

# The real-server fixtures (shared with the service, reliability and worker tests): pytest registers them
# from this module's namespace for this folder.
from service_fixtures import *  # noqa: F403
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from generator.fast import FastPathSettings
from store.objects import S3ObjectStore
from store.registry import register_model
from worker.celery_app import create_celery_app
from worker.context import WorkerContext
from worker.pipelines import PipelineCache

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# The worker tests' helpers (tiny model directory, worker settings), imported by path.
_worker = load_test_module("console_worker_helpers", TESTS / "worker" / "worker_helpers.py")


@pytest.fixture(scope="session")
def console_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _worker.build_tiny_model_dir(tmp_path_factory.mktemp("console-model"))


@pytest.fixture(scope="session")
def console_pipelines() -> PipelineCache:
    return PipelineCache("cpu", fast_path=FastPathSettings(max_clips_per_batch=2))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class InProcessWorker:
    """The API's task sender: runs G2's Celery task (`task.apply`, the worker's own code path) on one
    background thread, as one worker process would."""

    def __init__(self, context: WorkerContext) -> None:
        self.celery = create_celery_app(context.settings, context=context)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-worker")
        self.errors: list[BaseException] = []

    def __call__(self, task: str, payload: dict[str, Any]) -> None:
        self.executor.submit(self._run, task, payload)

    def _run(self, task: str, payload: dict[str, Any]) -> None:
        result = self.celery.tasks[task].apply(kwargs=payload)
        if result.failed():
            self.errors.append(result.result)


@pytest.fixture
def console(
    clean: None,
    database_url: str,
    services: dict[str, str],
    s3_store: S3ObjectStore,
    sessions: sessionmaker[Session],
    console_pipelines: PipelineCache,
    console_model_dir: Path,
    make_key: Callable[[str], dict[str, str]],
    tmp_path: Path,
) -> Iterator[Console]:
    settings = _worker.worker_settings_for(database_url, services, tmp_path / "data")
    context = WorkerContext.from_settings(
        settings, lambda task, payload: None, object_store=s3_store, models=console_pipelines
    )
    worker = InProcessWorker(context)
    context.send_task = worker
    app = create_app(settings, object_store=s3_store, send_task=worker, check_broker=lambda: None)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    with sessions() as session:
        model_name = register_model(session, console_model_dir).name
        session.commit()
    api_key = make_key("console-tests")["Authorization"].removeprefix("Bearer ")
    try:
        yield Console(f"http://127.0.0.1:{port}", api_key, model_name, s3_store, sessions)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        worker.executor.shutdown(wait=True, cancel_futures=True)
        app.state.service.sessionmaker.kw["bind"].dispose()
        context.engine.dispose()
    assert not worker.errors, worker.errors


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (empty sessionStorage); fails the test on any script error or CSP violation."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not _expected_console_error(message.text):
            problems.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page
    context.close()
    assert not problems, problems


def _expected_console_error(text: str) -> bool:
    """Chromium logs every non-2xx fetch; the tests provoke 401 and 422 answers on purpose."""
    return "Failed to load resource" in text and ("401" in text or "422" in text)
