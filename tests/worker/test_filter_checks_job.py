"""A job on a model that names its data build runs the memorised and off_manifold checks by default: each
clip's nearest real training clip (id and distance, never pixels) and manifold share land in its record,
provenance and GET /v1/jobs counts; a threshold above every distance drops every clip as memorised first."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from worker_helpers import build_named_model_dir, build_tiny_data_build, register_model_and_build

from filter.neighbours import clip_distances, cross_patient_threshold
from store.models import JobStatus
from store.registry import register_model
from worker.context import WorkerContext
from worker.filtering import job_clips, load_clip_frames
from worker.jobs import process_job


@pytest.fixture(scope="module")
def data_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str, dict[str, np.ndarray]]:
    return build_tiny_data_build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def named_model_dir(tmp_path_factory: pytest.TempPathFactory, data_build: tuple[bytes, str, dict]) -> Path:
    return build_named_model_dir(tmp_path_factory.mktemp("named-model"), data_build[1])


def _submit(api: TestClient, headers: dict[str, str], model: str, **filter_settings: object) -> uuid.UUID:
    body = {
        "model": model,
        "banks_from": {"dataset": "build", "samples_per_bank": 1},
        "sampler": {"name": "ddim", "steps": 2, "guidance_scale": 2.0},
        "seed": 3,
        "filter": filter_settings,
    }
    response = api.post("/v1/jobs", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


def test_a_job_on_a_model_with_a_data_build_runs_both_checks_by_default(
    context: WorkerContext,
    api: TestClient,
    make_key: Callable[[str], dict[str, str]],
    named_model_dir: Path,
    data_build: tuple[bytes, str, dict[str, np.ndarray]],
) -> None:
    archive, manifest_sha256, train = data_build
    owner = make_key("checks-owner")
    model = register_model_and_build(context, api, owner, named_model_dir, archive)

    job_id = _submit(api, owner, model)
    submitted = api.get(f"/v1/jobs/{job_id}", headers=owner).json()
    assert (submitted["filter"]["memorised"], submitted["filter"]["off_manifold"]) == (True, True)
    assert submitted["filter"]["memorised_threshold"] is None  # no quality card: calibrated on the build
    assert process_job(context, job_id) == JobStatus.succeeded

    results = api.get(f"/v1/jobs/{job_id}", headers=owner).json()["results"]
    real = np.stack(list(train.values()))
    patients = [f"p{clip_id[1:]}" for clip_id in train]
    threshold = cross_patient_threshold(real, patients, 0.0)
    checks = results["checks"]
    assert checks["manifest_sha256"] == manifest_sha256 and checks["training_clips"] == len(train)
    assert checks["memorised_threshold"] == pytest.approx(threshold)
    assert checks["threshold_source"].startswith("calibrated on dataset 'build'")
    assert "k = 3-th nearest real frame" in checks["feature_space"]

    with context.sessions() as session:
        clips = job_clips(session, job_id)
        frames = np.stack([load_clip_frames(context.store, clip) for clip in clips])
        distances = clip_distances(frames, real)
        names = list(train)
        for clip, row in zip(clips, distances, strict=True):
            assert clip.real_distance == pytest.approx(row.min())
            assert clip.real_clip == names[int(row.argmin())]
            assert clip.memorised == (clip.real_distance < threshold)
            assert clip.off_manifold == (clip.manifold_share < 0.5)
            if clip.memorised:
                assert clip.reason == "memorised"
        reasons = [clip.reason for clip in clips if clip.reason is not None]
    assert results["dropped_counts"] == {reason: reasons.count(reason) for reason in set(reasons)}
    assert results["clips_kept"] == len(clips) - len(reasons)

    listed = api.get(f"/v1/jobs/{job_id}/clips", headers=owner).json()["items"]
    assert [c["real_clip"] for c in listed] == [c.real_clip for c in clips]
    provenance = api.get(f"/v1/clips/{clips[0].id}", headers=owner).json()["provenance"]["filter"]
    assert provenance["real_clip"] == clips[0].real_clip and provenance["checks"] == checks


def test_a_threshold_above_every_distance_drops_every_clip_as_memorised(
    context: WorkerContext,
    api: TestClient,
    make_key: Callable[[str], dict[str, str]],
    named_model_dir: Path,
    data_build: tuple[bytes, str, dict[str, np.ndarray]],
) -> None:
    with context.sessions() as session:
        model = register_model(session, named_model_dir).name
        session.commit()
    owner = make_key("checks-all-memorised")
    registered = api.post(
        "/v1/datasets", headers=owner, data={"name": "build"}, files={"file": ("build.zip", data_build[0])}
    )
    assert registered.status_code == 201, registered.text
    job_id = _submit(api, owner, model, memorised_threshold=2.0, off_manifold=False)
    assert process_job(context, job_id) == JobStatus.succeeded
    results = api.get(f"/v1/jobs/{job_id}", headers=owner).json()["results"]
    clips_total = len(data_build[2])
    assert results["dropped_counts"] == {"memorised": clips_total} and results["clips_kept"] == 0
    assert results["band"] is None
    assert results["checks"]["memorised_threshold"] == 2.0
