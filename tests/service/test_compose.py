"""docker-compose.yml (no Docker engine here): parsed as YAML and checked for the production shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose_spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    assert [str(e) for e in validator.iter_errors(compose)] == []
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["api"]["healthcheck"]["intervall"] = "5s"
    assert any("intervall" in str(e) for e in validator.iter_errors(broken))


def test_services_and_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "minio", "api", "worker"}
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert len(check["test"]) >= 2, name


def test_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = {
        volume.split(":")[0]
        for service in compose["services"].values()
        for volume in service.get("volumes", [])
        if not volume.startswith(".")
    }
    assert used == declared == {"postgres-data", "redis-data", "minio-data", "worker-cache"}


def test_api_and_worker_wiring(compose: dict[str, Any]) -> None:
    api, worker = compose["services"]["api"], compose["services"]["worker"]
    assert "db upgrade" in api["command"][-1] and "ctrlgenaug api" in api["command"][-1]
    env = api["environment"]
    assert env["CTRLGENAUG_BROKER_URL"] == "redis://redis:6379/0"
    assert env["CTRLGENAUG_S3_ENDPOINT"] == "minio:9000"
    assert env["CTRLGENAUG_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["CTRLGENAUG_ENVIRONMENT"] == "production"
    assert {d: c["condition"] for d, c in api["depends_on"].items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "minio": "service_healthy",
    }
    assert worker["command"][:4] == ["ctrlgenaug", "worker", "--pool", "solo"]
    gpu = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and len(gpu["device_ids"]) == 1
    assert worker["environment"]["CTRLGENAUG_BROKER_URL"] == env["CTRLGENAUG_BROKER_URL"]
