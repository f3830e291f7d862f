"""Clients that load a running service while a test measures something else: pollers of one job's status
and an uploader of PNG image priors, with their latencies and any error kept."""

from __future__ import annotations

import io
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from PIL import Image


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (64, 64), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


class Load:
    """Clients hammering the service until stopped: pollers of one job and an uploader; latencies kept."""

    def __init__(self, url: str, headers: dict[str, str], job_id: str, pollers: int = 3) -> None:
        self.url, self.headers, self.job_id = url, headers, job_id
        self.latencies: dict[str, list[float]] = {"poll": [], "upload": []}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._poll) for _ in range(pollers)]
        self._threads.append(threading.Thread(target=self._upload))

    def _timed(self, kind: str, request: Callable[[], httpx.Response]) -> None:
        started = time.monotonic()
        try:
            response = request()
        except httpx.HTTPError as exc:
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        self.latencies[kind].append(time.monotonic() - started)
        if response.status_code >= 500:
            self.errors.append(f"{kind}: {response.status_code} {response.text[:200]}")

    def _poll(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            while not self._stop.is_set():
                self._timed("poll", lambda: client.get(f"/v1/jobs/{self.job_id}"))

    def _upload(self) -> None:
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=60) as client:
            seed = 0
            while not self._stop.is_set():
                seed += 1
                files = {"file": ("p.png", png(seed))}
                self._timed(
                    "upload",
                    lambda: client.post("/v1/assets", files=files, data={"kind": "image_prior"}),  # noqa: B023
                )

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def summary(self) -> dict[str, Any]:
        return {
            kind: {
                "n": len(values),
                "p50_ms": round(1000 * statistics.median(values), 1),
                "p99_ms": round(1000 * float(np.percentile(values, 99)), 1),
                "max_ms": round(1000 * max(values), 1),
            }
            for kind, values in self.latencies.items()
        }
