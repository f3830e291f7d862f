"""Helpers of the worker tests: settings on the test servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
