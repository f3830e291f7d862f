"""docker-compose.yml without Docker: each Ctrl-GenAug service's command and healthcheck, as compose writes
them, run locally against the test's PostgreSQL, Redis and S3; then one small job through that API and
worker."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from compose_local import LocalService, Servers, load_compose, local_service

from store.objects import S3ObjectStore

REPO = Path(__file__).resolve().parents[2]
VARIABLES = {
    "CTRLGENAUG_SECRET_KEY": "compose-test-secret-key",
    "POSTGRES_PASSWORD": "unused-by-the-local-postgres",
    "S3_SECRET_KEY": "unused-by-the-local-s3",
}
STARTUP_TIMEOUT_S = 240
JOB_TIMEOUT_S = 300


def wait_healthy(service: LocalService, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not service.check_health(timeout_s=20):
        if process.poll() is not None or time.monotonic() > deadline:
            state = f"exited {process.returncode}" if process.poll() is not None else "never healthy"
            raise AssertionError(f"{service.name}: {state}; log:\n{log.read_text()[-4000:]}")
        time.sleep(2)


@pytest.fixture
def servers(services: dict[str, str], fresh_database: Callable[[], str], s3_store: S3ObjectStore) -> Servers:
    # a Redis database of its own: no other test's worker takes this job (nor this worker theirs)
    redis = urlsplit(services["CTRLGENAUG_TEST_REDIS_URL"])._replace(path=f"/{random.randint(1, 15)}")
    return Servers(
        database_url=fresh_database(),  # not migrated: the `migrate` one-shot does that
        redis_url=redis.geturl(),
        s3_endpoint=services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        s3_access_key=services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        s3_secret_key=services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        bucket=s3_store.bucket,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_compose_services_run_a_job_with_their_own_commands_and_healthchecks(
    servers: Servers,
    worker_model_dir: Path,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    compose = load_compose(REPO / "docker-compose.yml", VARIABLES)

    def service(name: str) -> LocalService:
        return local_service(compose, name, servers, tmp_path / "services")

    migrate = service("migrate")
    done = migrate.run(timeout_s=180)
    assert done.returncode == 0, done.stdout + done.stderr

    init = service("init")
    (tmp_path / "services" / "init" / "models" / "demo").symlink_to(worker_model_dir)
    done = init.run(timeout_s=180)
    assert done.returncode == 0, done.stdout + done.stderr
    key = done.stdout.strip().splitlines()[-1]
    assert key.startswith("cga_"), done.stdout

    api, worker = service("api"), service("worker")
    (tmp_path / "services" / "worker" / "models" / "demo").symlink_to(worker_model_dir)
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker")}
    api_process, worker_process = api.popen(logs["api"]), worker.popen(logs["worker"])
    processes += [api_process, worker_process]
    wait_healthy(api, api_process, logs["api"])
    wait_healthy(worker, worker_process, logs["worker"])
    # the healthcheck has teeth: the node name Celery gives workers by default is not this worker
    wrong_target = [worker.healthcheck[0], worker.healthcheck[1].replace("gpu0@", "celery@")]  # type: ignore[index]
    assert not worker.check_health(timeout_s=30, healthcheck=wrong_target)

    (port,) = api.ports.values()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    (model,) = client.get("/v1/models").json()
    submitted = client.post(
        "/v1/jobs",
        json={
            "model": model["name"],
            "banks": [{"class_label": "class_1", "samples": 2}],
            "sampler": {"name": "ddim", "steps": 2, "guidance_scale": 2.0},
            "seed": 5,
        },
    )
    assert submitted.status_code == 202, submitted.text
    job_url = f"/v1/jobs/{submitted.json()['id']}"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job := client.get(job_url).json())["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job stuck: {job}\n{logs['worker'].read_text()[-4000:]}"
        time.sleep(1)
    assert job["status"] == "succeeded", job["error"]
    link = client.get(f"{job_url}/database", params={"presigned": 1}).json()
    assert urlsplit(link["url"]).hostname == "localhost"  # CTRLGENAUG_S3_PUBLIC_ENDPOINT
    assert httpx.get(link["url"]).status_code == 200
