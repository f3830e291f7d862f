"""A job's quality figures: its clips against the training clips of the model's data build (the dataset of
the job's project registered from the manifest the model's sequence stage trained on), in GET /v1/jobs; and
the PNG strips a reviewer sees of a clip (its frames, its image prior, its source real clip)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from worker_helpers import (
    NUM_CLASSES,
    build_named_model_dir,
    build_tiny_data_build,
    register_model_and_build,
)

from quality.metrics import frame_coherence
from store.data_builds import find_data_build
from store.models import Job, JobStatus
from worker.context import WorkerContext
from worker.filtering import job_clips, load_clip_frames
from worker.job_quality import CLIP_FIGURES
from worker.jobs import process_job


@pytest.fixture(scope="module")
def data_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str, dict[str, np.ndarray]]:
    return build_tiny_data_build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def named_model_dir(tmp_path_factory: pytest.TempPathFactory, data_build: tuple[bytes, str, dict]) -> Path:
    return build_named_model_dir(tmp_path_factory.mktemp("named-model"), data_build[1])


def _png(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))


def test_a_banks_from_job_carries_quality_and_serves_strips_of_frames_prior_and_source(
    context: WorkerContext,
    api: TestClient,
    make_key: Callable[[str], dict[str, str]],
    named_model_dir: Path,
    data_build: tuple[bytes, str, dict[str, np.ndarray]],
) -> None:
    archive, manifest_sha256, train = data_build
    owner, other = make_key("quality-owner"), make_key("quality-other")
    model = register_model_and_build(context, api, owner, named_model_dir, archive)
    body = {
        "model": model,
        "banks_from": {"dataset": "build", "samples_per_bank": 2},
        "sampler": {"name": "ddim", "steps": 2, "guidance_scale": 2.0},
        "seed": 5,
        # the tiny model's clips are noise the reference checks drop: these figures need kept clips
        "filter": {"memorised": False, "off_manifold": False},
    }
    submitted = api.post("/v1/jobs", headers=owner, json=body)
    assert submitted.status_code == 202, submitted.text
    job_id = uuid.UUID(submitted.json()["id"])
    assert submitted.json()["results"]["quality"] is None
    assert "not been filtered" in submitted.json()["results"]["quality_reason"]

    elsewhere = api.post(
        "/v1/jobs",
        headers=other,
        json={"model": model, "banks": [{"class_label": "class_1", "samples": 1}], "seed": 1},
    )
    with context.sessions() as session:
        job = session.get_one(Job, uuid.UUID(elsewhere.json()["id"]))
        dataset, reason = find_data_build(session, job.model, job.project_id)
    assert dataset is None and manifest_sha256 in reason and "not registered" in reason

    assert process_job(context, job_id) == JobStatus.succeeded
    results = api.get(f"/v1/jobs/{job_id}", headers=owner).json()["results"]
    assert results["quality_reason"] is None
    quality = results["quality"]
    assert quality["data"]["manifest_sha256"] == manifest_sha256
    assert quality["data"]["dataset"] == "build" and quality["data"]["training_clips"] == 2 * NUM_CLASSES
    assert quality["data"]["skipped_short_clips"] == []
    assert set(quality["definitions"]) >= {"feature_space", "memorisation_distance", "coherence"}

    with context.sessions() as session:
        clips = job_clips(session, job_id)
        frames = np.stack([load_clip_frames(context.store, clip) for clip in clips])
        kept = np.asarray([bool(clip.kept) for clip in clips])
    real_coherence = frame_coherence(np.stack(list(train.values())))
    for name, chosen in (("all", np.ones(len(clips), bool)), ("kept", kept)):
        figures = quality[name]
        assert set(figures["per_class"]) == {f"class_{i}" for i in range(NUM_CLASSES)}
        overall = figures["overall"]
        assert set(overall) == set(CLIP_FIGURES)
        assert overall["clips"] == chosen.sum() == (results["clips_kept"] if name == "kept" else len(clips))
        assert overall["coherence_real"] == pytest.approx(real_coherence.mean())
        assert overall["coherence_generated"] == pytest.approx(frame_coherence(frames[chosen]).mean())
        assert overall["coherence_ratio"] == pytest.approx(
            overall["coherence_generated"] / overall["coherence_real"]
        )
        assert 0.0 <= overall["memorised_share"] <= 1.0 and overall["nearest_training_distance"] > 0
    assert all(0.0 <= quality["all"]["overall"][f] <= 1.0 for f in ("precision", "recall", "coverage"))
    assert quality["all"]["per_class"]["class_0"]["clips"] == 4
    assert quality["all"]["per_class"]["class_0"]["coherence_real"] == pytest.approx(
        real_coherence[:2].mean()
    )

    clip = clips[0]
    source = train[clip.bank.source_clip_id]
    strip = api.get(f"/v1/clips/{clip.id}/strips/frames", headers=owner)
    assert strip.status_code == 200 and strip.headers["content-type"] == "image/png"
    assert np.array_equal(_png(strip.content), np.concatenate(list(frames[0]), axis=1))
    prior = api.get(f"/v1/clips/{clip.id}/strips/image_prior", headers=owner)
    assert np.array_equal(_png(prior.content), source[0])
    real = api.get(f"/v1/clips/{clip.id}/strips/source", headers=owner)
    assert np.array_equal(_png(real.content), np.concatenate(list(source), axis=1))
    hidden = api.get(f"/v1/clips/{clip.id}/strips/source", headers=other)
    assert hidden.status_code == 404 and hidden.json()["detail"][0]["loc"] == ["path", "clip_id"]
    unknown = api.get(f"/v1/clips/{clip.id}/strips/motion", headers=owner)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["path", "kind"]


def test_the_provenance_file_read_is_the_one_training_writes() -> None:
    from store.data_builds import PROVENANCE_FILE
    from training.assemble import PROVENANCE_FILE as WRITTEN

    assert PROVENANCE_FILE == WRITTEN == "training_provenance.json"
