"""docker-compose.yml (no Docker engine here): parsed as YAML and checked for the production shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import tomllib
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
    assert set(services) == {"postgres", "redis", "s3", "migrate", "init", "api", "worker"}
    one_shots = {name for name, service in services.items() if service.get("restart") == "no"}
    assert one_shots == {"migrate", "init"}
    for name, service in services.items():
        if name in one_shots:
            continue
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
    assert used == declared == {"postgres-data", "redis-data", "s3-data", "worker-cache"}


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        repository, _, tag = service["image"].rpartition(":")
        assert repository and tag[:1].isdigit(), f"{name}: {service['image']} is not pinned to a version"


def test_api_and_worker_wiring(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api, worker = services["api"], services["worker"]
    assert services["migrate"]["command"] == ["ctrlgenaug", "db", "upgrade"]
    for name in ("api", "worker", "init"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    env = api["environment"]
    assert env["CTRLGENAUG_BROKER_URL"] == "redis://redis:6379/0"
    assert env["CTRLGENAUG_S3_ENDPOINT"] == "s3:8333"
    assert env["CTRLGENAUG_S3_PUBLIC_ENDPOINT"] == "${CTRLGENAUG_S3_PUBLIC_ENDPOINT:-http://localhost:8333}"
    assert env["CTRLGENAUG_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["CTRLGENAUG_ENVIRONMENT"] == "production"
    gpu = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and len(gpu["device_ids"]) == 1
    assert worker["environment"]["CTRLGENAUG_BROKER_URL"] == env["CTRLGENAUG_BROKER_URL"]


def test_dockerfile_runs_as_a_user_and_installs_dependencies_before_the_code() -> None:
    lines = [
        line.split() for line in (COMPOSE.parent / "Dockerfile").read_text().splitlines() if line.strip()
    ]
    instructions = [words[0] for words in lines if words[0].isupper()]
    assert instructions.count("USER") == 1 and lines[instructions.index("USER")][1] != "root"
    copies = [words[1] for words in lines if words[0] == "COPY"]
    assert copies[0] == "pyproject.toml"  # the dependency layer depends on nothing else
    first_code_copy = next(
        i for i, words in enumerate(lines) if words[0] == "COPY" and words[1] != "pyproject.toml"
    )
    dependency_install = next(i for i, words in enumerate(lines) if "-r" in words and "pip" in words)
    assert dependency_install < first_code_copy


def test_the_image_gets_every_package_pyproject_installs() -> None:
    pyproject = tomllib.loads((COMPOSE.parent / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    admitted = {
        line[1:].strip()
        for line in (COMPOSE.parent / ".dockerignore").read_text().splitlines()
        if line[:1] == "!"
    }
    assert packages <= admitted, packages - admitted
    assert all((COMPOSE.parent / name).is_dir() for name in packages)
