"""Fixtures on the REAL test servers (PostgreSQL, Redis, SeaweedFS S3), shared by the conftests of
tests/service, tests/reliability, tests/worker and tests/console.

A plain module, not a conftest: each of those conftests does `from service_fixtures import *` (the
fixtures named in `__all__`), so pytest registers them per folder, exactly as if they were written there:
each folder's session gets a fresh database and a fresh bucket of its own. `tests/conftest.py` puts this
folder on `sys.path`.

The servers come from `scripts/services.sh start`, which `services` runs (it reuses running servers)
when the CTRLGENAUG_TEST_* variables are not set.

Two small fixtures tune the shared ones; a conftest overrides them by defining its own:
`resource_tag` names the databases (`ctrlgenaug_<tag>_…`) and buckets (`ctrlgenaug-<tag>-…`), and
`settings_secret` is the `settings` fixture's secret.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from minio import Minio
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from migrations import upgrade
from store.db import build_engine, build_sessionmaker
from store.keys import create_api_key
from store.models import Base
from store.objects import S3ObjectStore
from store.settings import Settings, get_settings

__all__ = [
    "admin_url",
    "clean",
    "embedded_data_dir",
    "database_url",
    "engine",
    "fresh_database",
    "make_key",
    "resource_tag",
    "s3_client",
    "s3_store",
    "services",
    "sessions",
    "settings",
    "settings_secret",
    "tiny_model",
    "tiny_model_dir",
]

REPO = Path(__file__).resolve().parents[2]
ENV_NAMES = (
    "CTRLGENAUG_TEST_DATABASE_URL",
    "CTRLGENAUG_TEST_REDIS_URL",
    "CTRLGENAUG_TEST_S3_ENDPOINT",
    "CTRLGENAUG_TEST_S3_ACCESS_KEY",
    "CTRLGENAUG_TEST_S3_SECRET_KEY",
)
TEST_SECRET = "test-secret-key-for-the-service-tests"
UPLOAD_LIMIT = 256 * 1024


def _read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line.removeprefix("export ").partition("=")
            values[name] = value
    return values


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as psycopg (libpq) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def resource_tag() -> str:
    """Names this folder's databases and buckets; override it in a conftest."""
    return "test"


@pytest.fixture(scope="session")
def settings_secret() -> str:
    """The `settings` fixture's secret; override it in a conftest."""
    return TEST_SECRET


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    if all(os.environ.get(name) for name in ENV_NAMES):
        return {name: os.environ[name] for name in ENV_NAMES}
    env_file = REPO / "scripts" / "services.env"
    subprocess.run([str(REPO / "scripts" / "services.sh"), "start"], check=True, capture_output=True)
    return _read_env_file(env_file)


@pytest.fixture(scope="session")
def admin_url(services: dict[str, str]) -> str:
    return services["CTRLGENAUG_TEST_DATABASE_URL"]


@pytest.fixture(scope="session")
def fresh_database(admin_url: str, resource_tag: str) -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL databases (dropped at the end of the session)."""
    created: list[str] = []

    def make() -> str:
        name = f"ctrlgenaug_{resource_tag}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(fresh_database: Callable[[], str]) -> str:
    url = fresh_database()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = build_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> sessionmaker[Session]:
    return build_sessionmaker(engine)


@pytest.fixture(scope="session")
def s3_client(services: dict[str, str]) -> Minio:
    return Minio(
        services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        access_key=services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        secret_key=services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        secure=False,
    )


@pytest.fixture(scope="session")
def s3_store(s3_client: Minio, resource_tag: str) -> Iterator[S3ObjectStore]:
    store = S3ObjectStore(s3_client, f"ctrlgenaug-{resource_tag}-{uuid.uuid4().hex[:12]}")
    store.ensure_bucket()
    yield store
    for info in list(store.list()):
        store.delete(info.key)
    s3_client.remove_bucket(bucket_name=store.bucket)


@pytest.fixture
def clean(sessions: sessionmaker[Session], s3_store: S3ObjectStore) -> None:
    """Every test starts with empty tables and an empty bucket."""
    with sessions() as session:
        tables = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
        session.execute(text(f"TRUNCATE {tables} CASCADE"))
        session.commit()
    for info in list(s3_store.list()):
        s3_store.delete(info.key)


@pytest.fixture
def settings(database_url: str, services: dict[str, str], settings_secret: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        secret_key=settings_secret,
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
    """Stands in for the Celery client: records what the outbox dispatches (no worker in these tests)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.fail_with: Exception | None = None

    def __call__(self, task: str, payload: dict[str, Any]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((task, payload))


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
    """The tiny generator registered in the service; returns its name."""
    from store.registry import register_model

    with sessions() as session:
        record = register_model(session, tiny_model_dir)
        session.commit()
        return record.name


@pytest.fixture
def embedded_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The environment of the embedded default (no external servers, no secret): CTRLGENAUG_DATA_DIR set
    to a fresh folder, the cached settings reloaded around the test."""
    for name in ("DATABASE_URL", "BROKER_URL", "S3_ENDPOINT", "ENVIRONMENT", "SECRET_KEY"):
        monkeypatch.delenv(f"CTRLGENAUG_{name}", raising=False)
    monkeypatch.setenv("CTRLGENAUG_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield tmp_path / "data"
    get_settings.cache_clear()
