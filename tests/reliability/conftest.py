"""Fixtures of the reliability tests: the app on the shared servers (a fresh database and bucket of its own)
for fuzzing, hostile inputs and isolation; private restartable servers for the fault tests live in
`throwaway_servers.py` and the fault-test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

# The real-server fixtures (shared with the service, worker and console tests): pytest registers them from
# this module's namespace for this folder; `resource_tag` and `settings_secret` below are this folder's own.
from service_fixtures import *  # noqa: F403
from service_fixtures import RecordingSender

from api.main import create_app
from store.objects import S3ObjectStore
from store.settings import Settings

RELIABILITY_TESTS = Path(__file__).resolve().parent
TEST_SECRET = "reliability-test-secret-key"


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


@pytest.fixture(scope="session")
def resource_tag() -> str:
    """Databases `ctrlgenaug_reliability_…`, buckets `ctrlgenaug-reliability-…`."""
    return "reliability"


@pytest.fixture(scope="session")
def settings_secret() -> str:
    return TEST_SECRET


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
