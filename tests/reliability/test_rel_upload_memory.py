"""The outside probe's hostile uploads under the DEFAULT limits (issue 16): each runs through the API in a
fresh process (`upload_memory_probe.py`) whose peak memory is measured, with the real motion extraction.

Targets: peak memory of the upload ≤ 512 MiB; stored derived data (the motion field) ≤ 10 × the clip a model
can use, which with no model registered is `condition_max_frames` × `condition_max_side`² uint8 values.
The time is printed, not asserted: the server enforces `max_upload_seconds` itself (a 413, tested in
test_rel_hostile_inputs.py), and on the shared box the wall time follows its load. With a model registered,
the upload keeps that model's frame count and size.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from reliability_support import REPO, bucket_keys, load_corpus, row_counts
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ingest.readers.collect import fitted_size
from store.models import ModelRecord
from store.objects import S3ObjectStore
from store.settings import Settings

CORPUS = load_corpus()
MAX_PEAK_BYTES = 512 * 1024 * 1024
DEFAULTS = Settings(environment="development")
DEFAULT_CLIP_BYTES = DEFAULTS.condition_max_frames * DEFAULTS.condition_max_side**2
PROBE_UPLOADS: dict[str, tuple[Callable[[], bytes], str, list[int]]] = {
    # 1000×512×512 zeros (262 M values, under max_clip_voxels) in ~255 KB
    "npz-1000x512x512-zeros": (CORPUS.npz_zeros_clip, "clip.npz", [32, 2, 256, 256]),
    # exactly max_clip_voxels (256 Mi uint8 voxels) in ~261 KB; frames are slices along the last axis
    "nifti-gz-at-max-clip-voxels": (
        lambda: CORPUS.nifti_gz_zeros((512, 512, 1024)),
        "v.nii.gz",
        [32, 2, 256, 256],
    ),
    # 4D at max_clip_voxels: each kept frame is the mid slice of one volume, so 256 MB inflate in passing
    "nifti-gz-4d-at-max-clip-voxels": (
        lambda: CORPUS.nifti_gz_zeros((512, 512, 32, 32)),
        "t.nii.gz",
        [32, 2, 256, 256],
    ),
}


def probe_environment(
    database_url: str, services: dict[str, str], s3_store: S3ObjectStore, tmp_path: Path
) -> dict[str, str]:
    """Only the servers and the secret: every limit is the default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTRLGENAUG_")}
    return {
        **env,
        "CTRLGENAUG_ENVIRONMENT": "test",
        "CTRLGENAUG_SECRET_KEY": "upload-memory-probe-secret",
        "CTRLGENAUG_DATA_DIR": str(tmp_path / "data"),
        "CTRLGENAUG_DATABASE_URL": database_url,
        "CTRLGENAUG_BROKER_URL": services["CTRLGENAUG_TEST_REDIS_URL"],
        "CTRLGENAUG_S3_ENDPOINT": services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        "CTRLGENAUG_S3_ACCESS_KEY": services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        "CTRLGENAUG_S3_SECRET_KEY": services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        "CTRLGENAUG_S3_BUCKET": s3_store.bucket,
        "OMP_NUM_THREADS": "1",
    }


def run_probe(path: Path, kind: str, key: str, env: dict[str, str]) -> dict[str, Any]:
    finished = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "reliability" / "upload_memory_probe.py"),
            str(path),
            kind,
            key,
        ],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(PROBE_UPLOADS))
def test_probe_upload_under_default_limits_stays_within_memory_and_size(
    name: str,
    clean: None,
    make_key: Callable[[str], dict[str, str]],
    database_url: str,
    services: dict[str, str],
    s3_store: S3ObjectStore,
    tmp_path: Path,
) -> None:
    build, filename, shape = PROBE_UPLOADS[name]
    path = tmp_path / filename
    path.write_bytes(build())
    key = make_key("upload-memory")["Authorization"].removeprefix("Bearer ")
    result = run_probe(
        path, "reference_clip", key, probe_environment(database_url, services, s3_store, tmp_path)
    )
    print(
        f"{name}: {result['status']}, {result['upload_bytes']} bytes uploaded, peak RSS growth "
        f"{result['rss_growth'] / 2**20:.1f} MiB, traced peak {result['traced_peak'] / 2**20:.1f} MiB, "
        f"{result['seconds']:.2f} s, stored {result['stored']}"
    )
    assert result["limits"]["max_clip_voxels"] == DEFAULTS.max_clip_voxels  # the defaults, not test limits
    assert result["status"] == 201, result["body"]
    assert result["body"]["shape"] == shape
    assert result["rss_growth"] <= MAX_PEAK_BYTES and result["traced_peak"] <= MAX_PEAK_BYTES
    assert result["stored"]["array.npy"] <= 10 * DEFAULT_CLIP_BYTES


def test_uploads_keep_the_frames_and_size_of_the_largest_registered_model(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    tiny_model: str,
    sessions: sessionmaker[Session],
) -> None:
    """The tiny model clips 8 frames; a 40-frame 48×96 reference clip keeps 8 frames shrunk into the model's
    frame (aspect kept), an image prior is shrunk the same way."""
    with sessions() as session:
        model = session.scalars(select(ModelRecord).where(ModelRecord.name == tiny_model)).one()
        frames, height, width = model.num_frames, model.height, model.width
    headers = make_key("keep")
    clip = CORPUS.npz_zeros_clip(frames=40, side=96)
    response = client.post(
        "/v1/assets", headers=headers, files={"file": ("c.npz", clip)}, data={"kind": "reference_clip"}
    )
    assert response.status_code == 201, response.text
    kept_height, kept_width = fitted_size(96, 96, height, width)
    assert response.json()["shape"] == [frames, 2, kept_height, kept_width]
    prior = client.post(
        "/v1/assets",
        headers=headers,
        files={"file": ("p.png", CORPUS.png_image(96, seed=1))},
        data={"kind": "image_prior"},
    )
    assert prior.status_code == 201, prior.text
    assert prior.json()["shape"] == [kept_height, kept_width]


def test_dataset_clip_beyond_what_a_model_can_use_is_refused_before_inflating(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
) -> None:
    """A data build whose training clip is the probe's kind of NPZ (600×512×512 zeros, ~150 KB): refused from
    the clip's NPY header, naming the clip, in bounded memory, leaving nothing behind."""
    clip = CORPUS.npz_zeros_clip(frames=600, side=512)
    line = {
        "clip_id": "big",
        "path": "clips/big.npz",
        "sha256": hashlib.sha256(clip).hexdigest(),
        "class_name": "a",
        "class_index": 0,
        "split": "train",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("build/manifest.jsonl", json.dumps(line) + "\n")
        archive.writestr("build/clips/big.npz", clip)
    headers = make_key("datasets")
    before = (row_counts(sessions), bucket_keys(s3_store))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    response = client.post(
        "/v1/datasets", headers=headers, data={"name": "big"}, files={"file": ("b.zip", buffer.getvalue())}
    )
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    assert response.json()["detail"][0]["msg"].startswith(
        "clip big: frames (600, 512, 512) exceed what a model can use (32 frames of at most 256×256"
    )
    assert rss_growth < 64 * 1024 * 1024
    assert (row_counts(sessions), bucket_keys(s3_store)) == before
