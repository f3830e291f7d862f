"""One upload through the API in a fresh process, with the DEFAULT limits (`Settings()` from the environment,
which names only the servers and the secret), measured: `python upload_memory_probe.py FILE KIND KEY`.

A small reference clip is uploaded first so that every import and codec is loaded before the measured
upload; then the process's peak RSS growth (getrusage high-water mark, C allocations included) and the
tracemalloc peak (Python and NumPy allocations) of the measured request are printed as one JSON line.
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from api.main import create_app
from store.settings import Settings


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def warm_up_clip() -> bytes:
    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 32), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, frames=frames)
    return buffer.getvalue()


def main(path: Path, kind: str, key: str) -> None:
    settings = Settings()
    app = create_app(settings, check_broker=lambda: None)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:

        def upload(data: bytes, name: str) -> dict[str, object]:
            response = client.post(
                "/v1/assets", headers=headers, files={"file": (name, data)}, data={"kind": kind}
            )
            return {"status": response.status_code, "body": response.json()}

        warm = upload(warm_up_clip(), "warm.npz")
        assert warm["status"] == 201, warm
        data = path.read_bytes()
        rss_before = max_rss_bytes()
        tracemalloc.start()
        started = time.monotonic()
        result = upload(data, path.name)
        seconds = time.monotonic() - started
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stored = None
        if result["status"] == 201:
            store = app.state.service.object_store
            body = result["body"]
            assert isinstance(body, dict)
            sha256, asset_kind = body["sha256"], body["kind"]
            keys = [
                info.key for info in store.list("projects/") if sha256 in info.key and asset_kind in info.key
            ]
            stored = {key.rsplit("/", 1)[-1]: store.stat(key).size for key in keys}
    limits = {
        name: getattr(settings, name)
        for name in (
            "max_upload_bytes",
            "max_image_pixels",
            "max_clip_frames",
            "max_clip_voxels",
            "condition_max_frames",
            "condition_max_side",
            "max_upload_seconds",
        )
    }
    print(
        json.dumps(
            {
                **result,
                "upload_bytes": len(data),
                "rss_growth": max_rss_bytes() - rss_before,
                "traced_peak": traced_peak,
                "seconds": seconds,
                "stored": stored,
                "limits": limits,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
