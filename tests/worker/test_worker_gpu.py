"""On a CUDA device: a job runs through the worker with the pipeline and the filter's classifier on the GPU
(embedded storage: SQLite and a local object folder, so no other server is needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from worker_helpers import build_tiny_model_dir

from migrations import upgrade
from store.export import verify_database_zip
from store.keys import get_or_create_project
from store.models import Bank, Clip, Job, JobStatus
from store.registry import register_model
from worker.context import WorkerContext
from worker.jobs import process_job
from worker.settings import WorkerSettings


@pytest.mark.gpu
def test_a_job_runs_on_the_gpu(tmp_path: Path) -> None:
    settings = WorkerSettings(
        environment="development",
        data_dir=tmp_path / "data",
        worker_device="cuda",
        worker_batch_size=3,
        cancel_poll_interval_s=0.0,
        progress_interval_s=0.0,
    )
    upgrade(settings.resolved_database_url)
    model_dir = build_tiny_model_dir(tmp_path / "model", "swin3d_t")  # torchvision only
    context = WorkerContext.from_settings(settings, lambda task, payload: None)
    with context.sessions() as session:
        record = register_model(session, model_dir)
        project = get_or_create_project(session, "gpu")
        job = Job(
            project_id=project.id,
            model_id=record.id,
            request={},
            seed=5,
            sampler={"name": "ddim", "steps": 20, "guidance_scale": 7.5, "eta": 0.0},
            filter_settings={},
            banks=[Bank(index=i, class_label=f"class_{i}", class_index=i, samples=3) for i in range(2)],
            banks_total=2,
            clips_total=6,
            denoise_steps=20,
            dropped_counts={},
            timings={},
        )
        session.add(job)
        session.commit()
        job_id = job.id

    assert process_job(context, job_id) == JobStatus.succeeded
    loaded = context.models.get(record)
    assert loaded.pipeline.device.type == "cuda"
    assert next(loaded.classifier.parameters()).device.type == "cuda"
    with context.sessions() as session:
        finished = session.get_one(Job, job_id)
        assert (finished.clips_done, finished.banks_done, finished.error) == (6, 2, None)
        clips = session.scalars(select(Clip).where(Clip.job_id == job_id)).all()
        assert len(clips) == 6 and all(c.kept is not None for c in clips)
        for clip in clips:
            assert hashlib.sha256(context.store.get(clip.object_key)).hexdigest() == clip.sha256
    database = tmp_path / "database.zip"
    database.write_bytes(context.store.get(finished.database_object_key or ""))
    report = verify_database_zip(database)
    assert report.ok and report.files_checked == finished.clips_kept, report.errors
    assert torch.cuda.max_memory_allocated() > 0
