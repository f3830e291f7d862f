"""Private, restartable servers for the fault tests: a PostgreSQL cluster (initdb/pg_ctl), a Redis server
and a SeaweedFS S3 gateway (`weed mini`), each on free loopback ports, not the shared ones."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from reliability_support import free_ports, port_open, wait_until

WEED = Path(sys.executable).parent / "weed"


def _stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class RedisServer:
    """redis-server with an fsync-always append-only file like production: a restart keeps the queue."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_ports(1)[0]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.root),
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), 30, "redis-server")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        _stop_process(self.process, sig)
        self.process = None

    def restart(self, down_s: float = 0.0, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        time.sleep(down_s)
        self.start()


class PostgresCluster:
    """A throwaway cluster made with initdb, driven with pg_ctl (as the `postgres` user when run as root)."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = bins[-1]
        self.root = Path(tempfile.mkdtemp(prefix="ctrlgenaug-pg-"))
        self.data = self.root / "data"
        self.port = free_ports(1)[0]
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "pg.log"), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_s: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_s)
        self.start()

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class SeaweedS3:
    """A private SeaweedFS `weed mini` S3 gateway (same start line as scripts/services.sh)."""

    ACCESS_KEY = "reliability"
    SECRET_KEY = "reliability-secret"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = free_ports(12)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def s3_port(self) -> int:
        return self.ports[6]

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.s3_port}/", timeout=2)
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except OSError:
            return False
        return True

    def start(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        names = (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
            "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
            "admin.port", "admin.port.grpc",
        )  # fmt: skip
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY}
        log = (self.root / "weed.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(WEED), "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-admin.ui=false", "-webdav=false",
                *(f"-{name}={port}" for name, port in zip(names, self.ports, strict=True)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        wait_until(self.answers, 120, "weed mini S3 gateway")

    def stop(self) -> None:
        _stop_process(self.process)
        self.process = None
