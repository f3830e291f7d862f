"""What `ctrlgenaug up` prints once the API answers: where the console and the docs are, how to make a key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

POLL_INTERVAL_S = 0.5


def banner(base_url: str, data_dir: Path) -> list[str]:
    return [
        "Ctrl-GenAug is ready:",
        f"  console   {base_url}/console",
        f"  API docs  {base_url}/docs",
        f"  API key   CTRLGENAUG_DATA_DIR={data_dir} ctrlgenaug keys create --project NAME",
    ]


def announce_when_ready(
    host: str, port: int, data_dir: Path, echo: Callable[[str], None], timeout_s: float = 600
) -> threading.Thread:
    """Poll the API's health in the background and print the banner once it answers."""
    base_url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"

    def wait_then_announce() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/v1/health", timeout=2).status_code == 200:
                    for line in banner(base_url, data_dir):
                        echo(line)
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_INTERVAL_S)

    thread = threading.Thread(target=wait_then_announce, name="ready-banner", daemon=True)
    thread.start()
    return thread
