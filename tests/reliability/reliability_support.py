"""Small helpers of the reliability tests: free ports, waiting, loading the repo's scripts by path, and
what a test compares before and after a request (row counts, bucket listing)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Base
from store.objects import ObjectStore

REPO = Path(__file__).resolve().parents[2]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout_s} s")
        time.sleep(0.2)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def load_by_path(relative: str, name: str) -> ModuleType:
    """Import a repo file that is not in a package (scripts/, tests/data/) under `name`."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_faultproxy() -> ModuleType:
    return load_by_path("scripts/faultproxy.py", "faultproxy")


def load_corpus() -> ModuleType:
    return load_by_path("tests/data/hostile/make_corpus.py", "hostile_corpus")


def row_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }


def bucket_keys(store: ObjectStore) -> list[str]:
    return sorted(info.key for info in store.list())


def data_build_zip(seed: int = 0) -> bytes:
    """A minimal data build (ingest's layout): two training clips of class_0 and class_1, no motion cache."""
    import hashlib
    import io
    import json
    import zipfile

    import numpy as np

    buffer = io.BytesIO()
    lines = []
    with zipfile.ZipFile(buffer, "w") as archive:
        for index, name in enumerate(("class_0", "class_1")):
            clip = io.BytesIO()
            frames = np.random.default_rng(seed + index).integers(0, 256, (8, 32, 32), dtype=np.uint8)
            np.savez(clip, frames=frames)
            path = f"clips/c{index}.npz"
            archive.writestr(path, clip.getvalue())
            lines.append(
                {
                    "clip_id": f"c{index}",
                    "path": path,
                    "sha256": hashlib.sha256(clip.getvalue()).hexdigest(),
                    "class_name": name,
                    "class_index": index,
                    "text": f"{name} clip",
                    "split": "train",
                }
            )
        archive.writestr("manifest.jsonl", "".join(json.dumps(line) + "\n" for line in lines))
    return buffer.getvalue()


def clip_npz(seed: int) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, frames=np.random.default_rng(seed).integers(0, 256, (8, 32, 32), dtype=np.uint8))
    return buffer.getvalue()


def service_environment(settings: object) -> dict[str, str]:
    """`CTRLGENAUG_*` variables that give a server process these `store.settings.Settings`."""
    import os

    from pydantic import SecretStr

    env = {k: v for k, v in os.environ.items() if not k.startswith("CTRLGENAUG_")}
    for name, value in settings.model_dump().items():  # type: ignore[attr-defined]
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"CTRLGENAUG_{name.upper()}"] = str(value)
    return env


def vm_high_water_bytes(pid: int) -> int:
    """The peak resident set size of a process (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


class UvicornServer:
    """The API in its own process on a free loopback port (what `ctrlgenaug api` runs)."""

    def __init__(self, env: dict[str, str], workers: int = 1) -> None:
        self.env = env
        self.port = free_ports(1)[0]
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornServer:
        import sys

        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "api.main:app_from_environment", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
                "--log-level", "warning", "--no-access-log",
            ],
            env=self.env,
            cwd=REPO,
        )  # fmt: skip
        wait_until(lambda: port_open(self.port), 120, "uvicorn")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
