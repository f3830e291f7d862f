"""Worker tests on the REAL servers (PostgreSQL, Redis, SeaweedFS S3), with the shared fixtures of
tests/support/service_fixtures.py and a tiny model directory (tiny generator + tiny semantic-filter
classifier)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

# The real-server fixtures (shared with the service, reliability and console tests): pytest registers them
# from this module's namespace for this folder.
from service_fixtures import *  # noqa: F403
from service_fixtures import RecordingSender
from sqlalchemy.orm import Session, sessionmaker
from worker_helpers import build_tiny_model_dir, worker_settings_for

from api.main import create_app
from generator.fast import FastPathSettings
from store.models import ModelRecord
from store.objects import S3ObjectStore
from store.registry import register_model
from worker.context import WorkerContext
from worker.pipelines import PipelineCache
from worker.settings import WorkerSettings

WORKER_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(WORKER_TESTS):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def worker_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("worker-model"))


@pytest.fixture(scope="session")
def pipeline_cache() -> PipelineCache:
    """Shared by the in-process tests: the model is loaded once (keyed by its checksum)."""
    return PipelineCache("cpu", fast_path=FastPathSettings(max_clips_per_batch=2))


@pytest.fixture
def worker_settings(database_url: str, services: dict[str, str], tmp_path: Path) -> WorkerSettings:
    return worker_settings_for(database_url, services, tmp_path / "data")


@pytest.fixture
def sender() -> Any:
    return RecordingSender()


@pytest.fixture
def context(
    clean: None,
    worker_settings: WorkerSettings,
    s3_store: S3ObjectStore,
    pipeline_cache: PipelineCache,
    sender: Any,
) -> Iterator[WorkerContext]:
    ctx = WorkerContext.from_settings(worker_settings, sender, object_store=s3_store, models=pipeline_cache)
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def model_name(context: WorkerContext, worker_model_dir: Path) -> str:
    with context.sessions() as session:
        record: ModelRecord = register_model(session, worker_model_dir)
        session.commit()
        return record.name


@pytest.fixture
def api(context: WorkerContext, sender: Any) -> Iterator[TestClient]:
    app = create_app(
        context.settings, object_store=context.store, send_task=sender, check_broker=lambda: None
    )
    with TestClient(app) as client:
        yield client
    app.state.service.sessionmaker.kw["bind"].dispose()


@pytest.fixture
def headers(make_key: Callable[[str], dict[str, str]], context: WorkerContext) -> dict[str, str]:
    return make_key("worker-tests")


@pytest.fixture
def submit(api: TestClient, headers: dict[str, str], model_name: str) -> Callable[..., uuid.UUID]:
    """Submit a job through the API (2 banks x 3 clips, 3 DDIM steps unless told otherwise)."""

    def submit_job(**body: Any) -> uuid.UUID:
        request = {
            "model": model_name,
            "banks": [
                {"class_label": "class_0", "text": "a beating heart", "samples": 3},
                {"class_label": "class_2", "samples": 3},
            ],
            "sampler": {"name": "ddim", "steps": 3, "guidance_scale": 2.0},
            "seed": 11,
            **body,
        }
        response = api.post("/v1/jobs", headers=headers, json=request)
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["id"])

    return submit_job


@pytest.fixture
def session_factory(context: WorkerContext) -> sessionmaker[Session]:
    return context.sessions
