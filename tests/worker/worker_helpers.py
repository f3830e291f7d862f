"""Helpers of the worker tests: settings on the test servers."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from worker.settings import WorkerSettings

TEST_SECRET = "test-secret-key-for-the-worker-tests"
NUM_CLASSES = 3
CLASSIFIER_NAME = "csn"


def worker_settings_for(
    database_url: str, services: dict[str, str], data_dir: Path, **overrides: Any
) -> WorkerSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "secret_key": TEST_SECRET,
        "data_dir": data_dir,
        "database_url": database_url,
        "broker_url": services["CTRLGENAUG_TEST_REDIS_URL"],
        "s3_endpoint": services["CTRLGENAUG_TEST_S3_ENDPOINT"],
        "s3_access_key": services["CTRLGENAUG_TEST_S3_ACCESS_KEY"],
        "s3_secret_key": services["CTRLGENAUG_TEST_S3_SECRET_KEY"],
        "worker_device": "cpu",
        "worker_batch_size": 2,
        "cancel_poll_interval_s": 0.0,
        "progress_interval_s": 0.0,
        "task_time_limit_s": 300.0,
        "broker_visibility_timeout_s": 360.0,
        "worker_retry_delay_s": 0.0,
    }
    return WorkerSettings(**{**values, **overrides})


def build_tiny_model_dir(model_dir: Path, classifier_name: str = CLASSIFIER_NAME) -> Path:
    """The tiny generator of the generator tests plus a tiny classifier in `classifier/`."""
    from classify.checkpoint import save_classifier
    from classify.registry import build_classifier, build_kwargs
    from generator.pipeline import build_tiny_pipeline

    pipeline = build_tiny_pipeline(num_classes=NUM_CLASSES)
    pipeline.save_pretrained(model_dir)
    classifier = build_classifier(classifier_name, NUM_CLASSES, tiny=True)
    save_classifier(
        model_dir / "classifier",
        classifier,
        classifier_name,
        {
            "num_classes": NUM_CLASSES,
            "in_channels": 1,
            "build_kwargs": build_kwargs(classifier_name, tiny=True),
            "normalization": {"mean": 0.45, "std": 0.225},
            "class_names": list(pipeline.info.class_names),
            "frames": pipeline.info.num_frames,
        },
    )
    return model_dir


def _moving_clip(seed: int, frames: int = 8, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clip = rng.integers(0, 40, (frames, size, size)).astype(np.uint8)
    for t in range(frames):
        clip[t, 8 + seed % 8 : 16 + seed % 8, 2 + 2 * t : 10 + 2 * t] = 200 + seed
    return clip


def build_tiny_data_build(root: Path) -> tuple[bytes, str, dict[str, np.ndarray]]:
    """A data build for the tiny model: per class 2 training clips (two patients) and 1 test clip.

    Returns its ZIP, its manifest SHA-256 and the training clips by clip id (in manifest order)."""
    lines, train = [], {}
    for index in range(NUM_CLASSES):
        for member, split in enumerate(("train", "train", "test")):
            clip_id = f"c{index}{member}"
            frames = _moving_clip(3 * index + member)
            path = root / "clips" / f"{clip_id}.npz"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, frames=frames)
            if split == "train":
                train[clip_id] = frames
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


def build_named_model_dir(model_dir: Path, manifest_sha256: str, version: str = "0.0.0-named") -> Path:
    """The tiny model under its own version, its provenance naming the data build its sequence stage
    trained on."""
    build_tiny_model_dir(model_dir)
    card_path = model_dir / "ctrlgenaug_model.json"
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "version": version}))
    provenance = {"sequence": {"stage": "sequence", "data_manifest_checksum": manifest_sha256}}
    (model_dir / "training_provenance.json").write_text(json.dumps(provenance))
    return model_dir


def register_model_and_build(
    context: Any, api: Any, headers: dict[str, str], model_dir: Path, archive: bytes
) -> str:
    """Register the model named by `model_dir` and upload `archive` as the dataset "build" of `headers`'
    project; returns the model's name."""
    from store.registry import register_model

    with context.sessions() as session:
        model = register_model(session, model_dir).name
        session.commit()
    registered = api.post(
        "/v1/datasets", headers=headers, data={"name": "build"}, files={"file": ("build.zip", archive)}
    )
    assert registered.status_code == 201, registered.text
    return model
