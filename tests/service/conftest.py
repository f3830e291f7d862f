"""Fixtures of the service tests on REAL servers: a fresh PostgreSQL database and a fresh S3 bucket per test
session (the shared fixtures of `tests/support/service_fixtures.py`), and the app with a recording sender.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# The real-server fixtures (shared with the reliability, worker and console tests): pytest registers them from
# this module's namespace for this folder.
from service_fixtures import *  # noqa: F403
from service_fixtures import RecordingSender

from api.main import create_app
from api.state import broker_checker
from generator.motion import extract_motion_field
from store.objects import LocalObjectStore, S3ObjectStore
from store.settings import Settings

SERVICE_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(SERVICE_TESTS):
            item.add_marker(pytest.mark.services)


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def client(
    clean: None, settings: Settings, s3_store: S3ObjectStore, sender: RecordingSender
) -> Iterator[TestClient]:
    app = create_app(
        settings,
        object_store=s3_store,
        send_task=sender,
        check_broker=broker_checker(settings.resolved_broker_url),
        extract_motion=extract_motion_field,
    )
    with TestClient(app) as test_client:
        yield test_client
    app.state.service.sessionmaker.kw["bind"].dispose()


@pytest.fixture
def local_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")
