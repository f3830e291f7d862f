"""Driving the embedded all-in-one service (`ctrlgenaug up`) from another process: the demo and the
benchmarks start it on a free loopback port in a data folder, wait until it is ready, and stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from contracts.jobs import FINISHED_JOB_STATUSES

REPO_ROOT = Path(__file__).resolve().parents[1]
# Settings that would point `up` at external servers instead of its embedded SQLite / folder / broker.
EXTERNAL_SERVICE_SETTINGS = ("CTRLGENAUG_DATABASE_URL", "CTRLGENAUG_BROKER_URL", "CTRLGENAUG_S3_ENDPOINT")
FINISHED_STATUSES = tuple(sorted(status.value for status in FINISHED_JOB_STATUSES))
STOP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(
    process: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout_s: float = STOP_TIMEOUT_S
) -> int:
    """Send `sig` (default Ctrl-C: the service stops its worker), kill if the process has not exited in
    `timeout_s`; returns its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


class EmbeddedService:
    """`ctrlgenaug up --model MODEL` in `data_dir` on a free port, as a context manager.

    `env` is the service's environment (the caller's, without external-server settings, plus
    `extra_env`); `ctrlgenaug(...)` runs other CLI commands against the same data folder.
    """

    def __init__(
        self,
        data_dir: Path,
        model_dir: Path,
        extra_env: dict[str, str] | None = None,
        stdout: IO[bytes] | int | None = None,
        ready_timeout_s: float = 300,
        stderr: IO[bytes] | int | None = None,
    ) -> None:
        self.env = {k: v for k, v in os.environ.items() if k not in EXTERNAL_SERVICE_SETTINGS}
        self.env.update({"CTRLGENAUG_DATA_DIR": str(data_dir), "CTRLGENAUG_ENVIRONMENT": "development"})
        self.env.update(extra_env or {})
        self.model_dir = model_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout = stdout
        self.stderr = stderr
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmbeddedService:
        command = ["up", "--port", str(self.port), "--model", str(self.model_dir)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *command],
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self.stdout,
            stderr=self.stderr,
        )
        try:
            self._wait_ready()
        except BaseException:
            stop(self.process)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            stop(self.process)

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(
                        f"`ctrlgenaug up` exited with code {self.process.returncode} before it was ready"
                    )
                try:
                    if client.get("/v1/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
        raise SystemExit(f"the service was not ready after {self.ready_timeout_s:g} s")

    def ctrlgenaug(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )

    def create_key(self, project: str) -> str:
        created = self.ctrlgenaug("keys", "create", "--project", project)
        if created.returncode != 0:
            raise SystemExit(f"`ctrlgenaug keys create` failed:\n{created.stderr}")
        return created.stdout.strip().splitlines()[-1]
