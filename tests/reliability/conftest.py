"""Fixtures of the reliability tests: the app on the shared servers (a fresh database and bucket of its own)
for fuzzing, hostile inputs and isolation; private restartable servers for the fault tests live in
`throwaway_servers.py` and the fault-test module."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from minio import Minio
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.main import create_app
from migrations import upgrade
from store.db import build_engine, build_sessionmaker
from store.keys import create_api_key
from store.models import Base
from store.objects import S3ObjectStore
from store.settings import Settings

REPO = Path(__file__).resolve().parents[2]
RELIABILITY_TESTS = Path(__file__).resolve().parent
ENV_NAMES = (
    "CTRLGENAUG_TEST_DATABASE_URL",
    "CTRLGENAUG_TEST_REDIS_URL",
    "CTRLGENAUG_TEST_S3_ENDPOINT",
    "CTRLGENAUG_TEST_S3_ACCESS_KEY",
    "CTRLGENAUG_TEST_S3_SECRET_KEY",
)
TEST_SECRET = "reliability-test-secret-key"
UPLOAD_LIMIT = 256 * 1024


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: one round of each injected fault (default suite)")
    config.addinivalue_line("markers", "fuzz: generated-request fuzzing of the REST API")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # One round of each fault takes ~2.5 min on the shared 2-core box: too long for the default suite, so it
    # runs when selected (`pytest -m faults tests/reliability`) or with `--run-chaos`.
    selected = "faults" in (config.option.markexpr or "") or config.getoption("--run-chaos")
    skip_faults = pytest.mark.skip(reason="one round of each fault: `pytest -m faults tests/reliability`")
    for item in items:
        if item.path.is_relative_to(RELIABILITY_TESTS):
            item.add_marker(pytest.mark.services)
            if "faults" in item.keywords and not selected:
                item.add_marker(skip_faults)


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = value
    return values


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    if all(os.environ.get(name) for name in ENV_NAMES):
        return {name: os.environ[name] for name in ENV_NAMES}
    subprocess.run([str(REPO / "scripts" / "services.sh"), "start"], check=True, capture_output=True)
    return _read_env_file(REPO / "scripts" / "services.env")


@pytest.fixture(scope="session")
def database_url(services: dict[str, str]) -> Iterator[str]:
    admin = services["CTRLGENAUG_TEST_DATABASE_URL"]
    name = f"ctrlgenaug_reliability_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = build_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> sessionmaker[Session]:
    return build_sessionmaker(engine)


@pytest.fixture(scope="session")
def s3_store(services: dict[str, str]) -> Iterator[S3ObjectStore]:
    client = Minio(
        services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        access_key=services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        secret_key=services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        secure=False,
    )
    store = S3ObjectStore(client, f"ctrlgenaug-reliability-{uuid.uuid4().hex[:12]}")
    store.ensure_bucket()
    yield store
    for info in list(store.list()):
        store.delete(info.key)
    client.remove_bucket(bucket_name=store.bucket)


@pytest.fixture
def clean(sessions: sessionmaker[Session], s3_store: S3ObjectStore) -> None:
    with sessions() as session:
        tables = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
        session.execute(text(f"TRUNCATE {tables} CASCADE"))
        session.commit()
    for info in list(s3_store.list()):
        s3_store.delete(info.key)


@pytest.fixture
def settings(database_url: str, services: dict[str, str], tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        secret_key=TEST_SECRET,
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=services["CTRLGENAUG_TEST_REDIS_URL"],
        s3_endpoint=services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        s3_access_key=services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        s3_secret_key=services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        max_upload_bytes=UPLOAD_LIMIT,
        max_image_pixels=512 * 512,
        max_clip_frames=64,
        max_clip_voxels=64 * 512 * 512,
    )


class RecordingSender:
    """Stands in for the Celery client: these tests run no worker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, task: str, payload: dict[str, Any]) -> None:
        self.sent.append((task, payload))


def still_motion(frames: Any) -> Any:
    """A zero motion field of the clip's shape: the codec motion extraction is not under test here."""
    import numpy as np

    count, height, width = frames.shape
    return np.zeros((count, 2, height, width), dtype=np.float32)


@pytest.fixture
def app(clean: None, settings: Settings, s3_store: S3ObjectStore) -> Iterator[FastAPI]:
    app = create_app(
        settings,
        object_store=s3_store,
        send_task=RecordingSender(),
        check_broker=lambda: None,
        extract_motion=still_motion,
    )
    yield app
    app.state.service.sessionmaker.kw["bind"].dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_key(sessions: sessionmaker[Session]) -> Callable[[str], dict[str, str]]:
    """Authorization headers of a new key for the named project."""

    def make(project: str) -> dict[str, str]:
        with sessions() as session:
            _, key = create_api_key(session, project)
            session.commit()
        return {"Authorization": f"Bearer {key}"}

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from generator.pipeline import build_tiny_pipeline

    model_dir = tmp_path_factory.mktemp("tiny-model")
    build_tiny_pipeline(num_classes=3).save_pretrained(model_dir)
    return model_dir


@pytest.fixture
def tiny_model(clean: None, sessions: sessionmaker[Session], tiny_model_dir: Path) -> str:
    from store.registry import register_model

    with sessions() as session:
        record = register_model(session, tiny_model_dir)
        session.commit()
        return record.name
