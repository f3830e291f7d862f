"""Settings: environment prefix, embedded defaults under the data dir, default secret only in development."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from generator.fast import FastPathSettings
from store.settings import Settings
from worker.settings import WorkerSettings


def test_embedded_defaults_live_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTRLGENAUG_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'ctrlgenaug.db'}"
    assert settings.resolved_broker_url == f"sqla+sqlite:///{tmp_path.resolve() / 'broker.db'}"
    assert settings.objects_dir == tmp_path / "objects"
    assert settings.s3_endpoint is None


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTRLGENAUG_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("CTRLGENAUG_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("CTRLGENAUG_SECRET_KEY", "s3cr3t")
    settings = Settings()
    assert settings.max_upload_bytes == 1234
    assert settings.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert settings.signing_secret() == "s3cr3t"


def test_worker_fast_path_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert WorkerSettings(environment="development").fast_path() == FastPathSettings()
    for name, value in {
        "PRECISION": "bf16",
        "BATCH_SIZE": "12",
        "MEMORY_FRACTION": "0.5",
        "COMPILE": "true",
        "COMPILE_MODE": "reduce-overhead",
        "CHANNELS_LAST": "true",
        "CAST_UNET": "true",
    }.items():
        monkeypatch.setenv(f"CTRLGENAUG_WORKER_{name}", value)
    assert WorkerSettings(environment="development").fast_path() == FastPathSettings(
        precision="bf16",
        max_clips_per_batch=12,
        memory_fraction=0.5,
        compile_unet=True,
        compile_mode="reduce-overhead",
        channels_last=True,
        cast_unet=True,
    )
    monkeypatch.setenv("CTRLGENAUG_WORKER_COMPILE_MODE", "fastest")
    with pytest.raises(ValidationError, match="worker_compile_mode"):
        WorkerSettings(environment="development")
