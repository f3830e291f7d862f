"""A job's quality figures: its clips against the training clips of the model's data build (the dataset of
the job's project registered from the manifest the model's sequence stage trained on), in GET /v1/jobs."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from worker_helpers import NUM_CLASSES, build_tiny_model_dir

from quality.metrics import frame_coherence
from store.models import Job, JobStatus
from store.registry import register_model
from worker.context import WorkerContext
from worker.filtering import job_clips, load_clip_frames
from worker.job_quality import CLIP_FIGURES, find_data_build
from worker.jobs import process_job

FRAMES, SIZE = 8, 32


def _clip(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 40, (FRAMES, SIZE, SIZE)).astype(np.uint8)
    for t in range(FRAMES):
        clip[t, 8 + seed % 8 : 16 + seed % 8, 2 + 2 * t : 10 + 2 * t] = 200 + seed
    return clip


def _data_build(root: Path) -> tuple[bytes, str, list[np.ndarray]]:
    """A data build with 2 training clips (two patients) and 1 test clip per class of the tiny model;
    returns its ZIP, manifest SHA-256 and the training clips in clip-id order."""
    lines, train = [], []
    for index in range(NUM_CLASSES):
        for member, split in enumerate(("train", "train", "test")):
            clip_id = f"c{index}{member}"
            frames = _clip(3 * index + member)
            path = root / "clips" / f"{clip_id}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, frames=frames)
            if split == "train":
                train.append(frames)
            lines.append(
                {
                    "clip_id": clip_id,
                    "path": f"clips/{clip_id}.npz",
                    "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                    "class_name": f"class_{index}",
                    "class_index": index,
                    "text": f"class_{index} clip",
                    "patient_id": f"p{index}{member}",
                    "split": split,
                }
            )
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in root.rglob("*"):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue(), hashlib.sha256(manifest.read_bytes()).hexdigest(), train


@pytest.fixture(scope="module")
def data_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str, list[np.ndarray]]:
    return _data_build(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def named_model_dir(tmp_path_factory: pytest.TempPathFactory, data_build: tuple[bytes, str, list]) -> Path:
    """The tiny model, its provenance naming the data build its sequence stage trained on."""
    model_dir = build_tiny_model_dir(tmp_path_factory.mktemp("named-model"))
    provenance = {"sequence": {"stage": "sequence", "data_manifest_checksum": data_build[1]}}
    (model_dir / "training_provenance.json").write_text(json.dumps(provenance))
    return model_dir


def test_job_results_carry_quality_against_the_models_registered_data_build(
    context: WorkerContext,
    api: TestClient,
    make_key: Callable[[str], dict[str, str]],
    named_model_dir: Path,
    data_build: tuple[bytes, str, list[np.ndarray]],
) -> None:
    archive, manifest_sha256, train = data_build
    with context.sessions() as session:
        model = register_model(session, named_model_dir).name
        session.commit()
    owner, other = make_key("quality-owner"), make_key("quality-other")
    registered = api.post(
        "/v1/datasets", headers=owner, data={"name": "build"}, files={"file": ("build.zip", archive)}
    )
    assert registered.status_code == 201, registered.text
    body = {
        "model": model,
        "banks_from": {"dataset": "build", "samples_per_bank": 2},
        "sampler": {"name": "ddim", "steps": 2, "guidance_scale": 2.0},
        "seed": 5,
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
        dataset, reason = find_data_build(session, session.get_one(Job, uuid.UUID(elsewhere.json()["id"])))
    assert dataset is None and manifest_sha256 in reason and "not registered" in reason

    assert process_job(context, job_id) == JobStatus.succeeded
    results = api.get(f"/v1/jobs/{job_id}", headers=owner).json()["results"]
    assert results["quality_reason"] is None
    quality = results["quality"]
    assert quality["data"]["manifest_sha256"] == manifest_sha256
    assert quality["data"]["dataset"] == "build" and quality["data"]["training_clips"] == 2 * NUM_CLASSES
    assert set(quality["definitions"]) >= {"feature_space", "memorisation_distance", "coherence"}

    with context.sessions() as session:
        clips = job_clips(session, job_id)
        frames = np.stack([load_clip_frames(context.store, clip) for clip in clips])
        kept = np.asarray([bool(clip.kept) for clip in clips])
    real_coherence = frame_coherence(np.stack(train))
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
