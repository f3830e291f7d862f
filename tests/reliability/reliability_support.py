"""Small helpers of the reliability tests: free ports, waiting, loading the repo's scripts by path, and
what a test compares before and after a request (row counts, bucket listing)."""

from __future__ import annotations

import importlib.util
import socket
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
            t.name: session.scalar(select(func.count()).select_from(t)) or 0 for t in Base.metadata.sorted_tables
        }


def bucket_keys(store: ObjectStore) -> list[str]:
    return sorted(info.key for info in store.list())
