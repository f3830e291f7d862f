"""docker-compose.yml's Ctrl-GenAug services as local processes (no Docker here): compose's variable
interpolation, its environment with the server hostnames mapped to the test servers on loopback, its volumes
mapped to folders, the container's published port mapped to a free local port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]+)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:?error}` (recursively)."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expression = match.group("braced") or match.group("plain")
        for separator in (":?", ":-"):
            name, found, rest = expression.partition(separator)
            if found:
                if variables.get(name):
                    return variables[name]
                if separator == ":?":
                    raise KeyError(f"{name}: {rest}")
                return rest
        return variables.get(expression, "")

    return _VARIABLE.sub(substitute, value)


def load_compose(path: Path, variables: dict[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(path.read_text()), variables)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Servers:
    """Where the compose services `postgres`, `redis` and `s3` are reachable on this machine."""

    database_url: str
    redis_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    bucket: str


def _assert_points_at(value: str, compose: dict[str, Any], service: str, port: int) -> None:
    """`value` (a URL or host:port) names the compose service on the port that service listens on."""
    parts = urlsplit(value if "://" in value else f"//{value}")
    assert service in compose["services"], f"docker-compose.yml has no {service!r} service"
    assert (parts.hostname, parts.port or port) == (service, port), f"{value}: not {service}:{port}"


def _s3_port(compose: dict[str, Any]) -> int:
    flags = [word for word in compose["services"]["s3"]["command"] if word.startswith("-s3.port=")]
    return int(flags[0].split("=")[1]) if flags else 8333


@dataclass
class LocalService:
    name: str
    command: list[str]
    healthcheck: list[str] | None
    env: dict[str, str]
    ports: dict[int, int]

    def popen(self, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def run(self, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command, env=self.env, capture_output=True, text=True, timeout=timeout_s)

    def check_health(self, timeout_s: float, healthcheck: list[str] | None = None) -> bool:
        test = healthcheck or self.healthcheck
        assert test is not None, f"{self.name} has no healthcheck"
        kind, *rest = test
        argv = ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest
        try:
            return subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout_s).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def local_service(compose: dict[str, Any], name: str, servers: Servers, folders: Path) -> LocalService:
    """The service `name` as a local process: its command and healthcheck with container paths and published
    ports mapped, its environment from compose with the server hostnames mapped to the test servers."""
    service = compose["services"][name]
    ports = {int(str(p).rsplit(":", 1)[1]): free_port() for p in service.get("ports", [])}
    mounts = {"/data": folders / name / "data"}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = folders / name / source.strip("./").replace("/", "-")

    def local(value: str) -> str:
        for target, source in mounts.items():
            if value == target or value.startswith(target + "/"):
                return str(source) + value[len(target) :]
        for container_port, host_port in ports.items():
            value = re.sub(rf"(?<=:){container_port}\b", str(host_port), value)
        return value

    def local_words(words: list[str]) -> list[str]:
        mapped = []
        for index, word in enumerate(words):
            if index and words[index - 1] == "--port" and int(word) in ports:
                mapped.append(str(ports[int(word)]))
            else:
                mapped.append(" ".join(local(part) for part in word.split(" ")))
        return mapped

    env = {str(k): str(v) for k, v in service.get("environment", {}).items()}
    database = urlsplit(env["CTRLGENAUG_DATABASE_URL"])
    _assert_points_at(env["CTRLGENAUG_DATABASE_URL"], compose, "postgres", 5432)
    test_database = urlsplit(servers.database_url)
    env["CTRLGENAUG_DATABASE_URL"] = urlunsplit(test_database._replace(scheme=database.scheme))
    broker = urlsplit(env["CTRLGENAUG_BROKER_URL"])
    _assert_points_at(env["CTRLGENAUG_BROKER_URL"], compose, "redis", 6379)
    env["CTRLGENAUG_BROKER_URL"] = urlunsplit(urlsplit(servers.redis_url)._replace(scheme=broker.scheme))
    _assert_points_at(env["CTRLGENAUG_S3_ENDPOINT"], compose, "s3", _s3_port(compose))
    env["CTRLGENAUG_S3_ENDPOINT"] = servers.s3_endpoint
    env["CTRLGENAUG_S3_PUBLIC_ENDPOINT"] = f"http://localhost:{servers.s3_endpoint.rsplit(':', 1)[1]}"
    env["CTRLGENAUG_S3_ACCESS_KEY"] = servers.s3_access_key
    env["CTRLGENAUG_S3_SECRET_KEY"] = servers.s3_secret_key
    env["CTRLGENAUG_S3_BUCKET"] = servers.bucket
    env = {k: local(v) for k, v in env.items()}
    for folder in mounts.values():
        folder.mkdir(parents=True, exist_ok=True)
    process_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CTRLGENAUG_")},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOSTNAME": socket.gethostname(),
        "OMP_NUM_THREADS": "1",
        **env,
    }
    healthcheck = service.get("healthcheck", {}).get("test")
    return LocalService(
        name=name,
        command=local_words(list(service["command"])),
        healthcheck=[healthcheck[0], *local_words(healthcheck[1:])] if healthcheck else None,
        env=process_env,
        ports=ports,
    )
