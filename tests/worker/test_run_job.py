"""A job through the worker's task, in process: generate → filter → export, each clip stored exactly once."""

from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import urllib3
from sqlalchemy import func, select

from filter.core import run_filter
from filter.scores import load_scores
from store.audit import verify_chain
from store.export import verify_database_zip
from store.jobs import clip_object_key, clip_preview_key, clip_seed, scores_object_key
from store.models import AuditEvent, Bank, BankStatus, Clip, Job, JobStatus
from store.outbox import RUN_JOB_TASK
from worker.celery_app import create_celery_app
from worker.context import WorkerContext
from worker.filtering import job_filter_settings
from worker.generation import generate_job
from worker.jobs import RequeueJob, RetryJob, process_job
from worker.monitor import SHUTDOWN, JobMonitor


def object_keys(context: WorkerContext) -> list[str]:
    return sorted(info.key for info in context.store.list())


def clip_rows(context: WorkerContext, job_id: uuid.UUID) -> list[Clip]:
    with context.sessions() as session:
        return list(
            session.scalars(
                select(Clip).join(Bank).where(Clip.job_id == job_id).order_by(Bank.index, Clip.index_in_bank)
            )
        )


def monitor_for(context: WorkerContext, job_id: uuid.UUID) -> JobMonitor:
    return JobMonitor(context.sessions, job_id, time_limit_s=300, poll_interval_s=0, progress_interval_s=0)


def test_job_runs_through_the_celery_task_to_a_verified_database(
    context: WorkerContext, submit: Callable[..., uuid.UUID], tmp_path: Path
) -> None:
    job_id = submit()
    app = create_celery_app(context.settings, context=context)
    result = app.tasks[RUN_JOB_TASK].apply(kwargs={"job_id": str(job_id)})
    assert result.get() == "succeeded"

    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.succeeded and job.error is None
        assert (job.banks_done, job.clips_done, job.deliveries) == (2, 6, 1)
        assert (job.denoise_step, job.denoise_steps) == (3, 3)
        assert [b.status for b in job.banks] == [BankStatus.done, BankStatus.done]
        assert [b.clips_done for b in job.banks] == [3, 3]
        assert set(job.timings) == {"generate", "filter", "quality", "export"}
        assert job.started_at is not None and job.finished_at is not None
        kinds = list(session.scalars(select(AuditEvent.kind).order_by(AuditEvent.seq)))
        assert verify_chain(session, job.project_id).ok
    assert kinds.count("clip.stored") == 6
    assert kinds[-3:] == ["job.filtered", "database.exported", "job.succeeded"]
    assert kinds.index("job.started") < kinds.index("clip.stored")

    clips = clip_rows(context, job_id)
    assert [(c.bank.index, c.index_in_bank) for c in clips] == [(b, i) for b in (0, 1) for i in range(3)]
    for clip in clips:
        data = context.store.get(clip.object_key)
        assert clip.object_key == clip_object_key(job_id, clip.bank.index, clip.index_in_bank)
        assert clip.preview_key == clip_preview_key(job_id, clip.bank.index, clip.index_in_bank, "gif")
        assert hashlib.sha256(data).hexdigest() == clip.sha256 and len(data) == clip.size_bytes
        assert clip.seed == clip_seed(11, clip.bank.index, clip.index_in_bank)
        with np.load(io.BytesIO(data)) as npz:
            assert npz["frames"].dtype == np.uint8 and npz["frames"].shape == (8, 32, 32)
            assert int(npz["seed"]) == clip.seed and int(npz["class_index"]) == clip.bank.class_index
        assert context.store.get(clip.preview_key or "")[:6] == b"GIF89a"
        assert clip.kept is not None and clip.vae_seq is not None and clip.loss is not None
        assert clip.kept == (clip.reason is None)
    assert job.clips_kept == sum(c.kept for c in clips) >= 1
    assert sum(job.dropped_counts.values()) == 6 - job.clips_kept
    assert job.band_low is not None and job.band_low <= job.band_high

    # the stored S.npz replays to the same decisions
    scores_path = tmp_path / "S.npz"
    scores_path.write_bytes(context.store.get(scores_object_key(job_id)))
    scores = load_scores(scores_path)
    assert scores.group.tolist() == [0, 0, 0, 1, 1, 1]
    assert scores.latents.shape == (6, 8, 4, 4, 4)
    settings, checks = job_filter_settings(job)
    assert not checks.enabled and job.filter_checks is None  # the tiny model names no data build
    replay = run_filter(scores.group, scores.loss, scores.latents, settings)
    assert replay.kept.tolist() == [c.kept for c in clips]
    assert np.allclose(replay.loss, [c.loss for c in clips])

    database = tmp_path / "db.zip"
    database.write_bytes(context.store.get(job.database_object_key or ""))
    assert hashlib.sha256(database.read_bytes()).hexdigest() == job.database_sha256
    report = verify_database_zip(database)
    assert report.ok, report.errors
    assert report.files_checked == job.clips_kept
    with zipfile.ZipFile(database) as archive:
        assert sum(n.endswith(".npz") for n in archive.namelist()) == job.clips_kept

    # a second delivery of a finished job changes nothing
    keys = object_keys(context)
    assert process_job(context, job_id) == JobStatus.succeeded
    assert object_keys(context) == keys
    with context.sessions() as session:
        assert session.get_one(Job, job_id).deliveries == 1


def test_rerunning_generation_stores_each_clip_exactly_once(
    context: WorkerContext, submit: Callable[..., uuid.UUID]
) -> None:
    job_id = submit()
    with context.sessions() as session:
        record = session.get_one(Job, job_id).model
    model = context.models.get(record)
    monitor = monitor_for(context, job_id)

    assert generate_job(context.sessions, context.store, model, job_id, monitor) == 6
    first = {(c.bank.index, c.index_in_bank, c.sha256, c.id) for c in clip_rows(context, job_id)}
    keys = object_keys(context)
    assert len(first) == 6 and len(keys) == 12  # NPZ + GIF per clip
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.clips_done, job.banks_done) == (6, 2)
        assert [b.status for b in job.banks] == [BankStatus.done, BankStatus.done]

    assert generate_job(context.sessions, context.store, model, job_id, monitor) == 0
    assert {(c.bank.index, c.index_in_bank, c.sha256, c.id) for c in clip_rows(context, job_id)} == first
    assert object_keys(context) == keys

    # a crash after clip (1, 1)'s objects were written but before its row was committed
    with context.sessions() as session:
        bank = session.scalars(select(Bank).where(Bank.job_id == job_id, Bank.index == 1)).one()
        lost = session.scalars(select(Clip).where(Clip.bank_id == bank.id, Clip.index_in_bank == 1)).one()
        session.delete(lost)
        bank.status = BankStatus.generating
        session.commit()
    assert generate_job(context.sessions, context.store, model, job_id, monitor) == 1
    again = clip_rows(context, job_id)
    assert {(c.bank.index, c.index_in_bank, c.sha256) for c in again} == {(b, i, h) for b, i, h, _ in first}
    assert object_keys(context) == keys
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Clip).where(Clip.job_id == job_id)) == 6
        job = session.get_one(Job, job_id)
        assert (job.clips_done, job.banks_done) == (6, 2)


def test_clips_of_different_banks_share_a_batch(
    context: WorkerContext, submit: Callable[..., uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = submit()
    with context.sessions() as session:
        model = context.models.get(session.get_one(Job, job_id).model)
    real_prepare = model.pipeline.prepare
    batches: list[list[tuple[int | None, int]]] = []

    def recorded_prepare(banks, seeds, sampler):  # type: ignore[no-untyped-def]
        batches.append([(bank.class_index, seed) for bank, seed in zip(banks, seeds, strict=True)])
        return real_prepare(banks, seeds, sampler)

    monkeypatch.setattr(model.pipeline, "prepare", recorded_prepare)
    assert process_job(context, job_id) == JobStatus.succeeded
    seeds = [clip_seed(11, b, i) for b in (0, 1) for i in range(3)]
    assert [len(b) for b in batches] == [2, 2, 2]  # worker_batch_size 2 over 6 clips of 2 banks
    assert [seed for _, seed in batches[1]] == seeds[2:4]  # bank 0's last clip, bank 1's first
    with context.sessions() as session:
        classes = [b.class_index for b in session.get_one(Job, job_id).banks]
    assert [bank for bank, _ in batches[1]] == classes


def test_cancel_mid_sampling_keeps_only_finished_clips(
    context: WorkerContext, submit: Callable[..., uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = submit()
    with context.sessions() as session:
        model = context.models.get(session.get_one(Job, job_id).model)
    real_denoise = model.pipeline.denoise_prepared
    batches: list[int] = []

    def denoise_then_cancel(batch, sampler, progress=None, should_cancel=None, autocast=None):  # type: ignore[no-untyped-def]
        batches.append(len(batch.noise))

        def progress_and_cancel(step: int, total: int) -> None:
            if progress is not None:
                progress(step, total)
            if len(batches) == 2 and step == 1:  # the API's cancel lands during the second batch
                with context.sessions() as session:
                    session.get_one(Job, job_id).cancel_requested = True
                    session.commit()

        return real_denoise(batch, sampler, progress_and_cancel, should_cancel, autocast)

    monkeypatch.setattr(model.pipeline, "denoise_prepared", denoise_then_cancel)
    assert process_job(context, job_id) == JobStatus.cancelled
    assert batches == [2, 2]
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.cancelled and job.finished_at is not None
        assert job.database_object_key is None and job.clips_done == 2
        assert [b.status for b in job.banks] == [BankStatus.pending, BankStatus.pending]
        assert (
            session.scalar(select(AuditEvent.kind).order_by(AuditEvent.seq.desc()).limit(1))
            == "job.cancelled"
        )
    assert [(c.bank.index, c.index_in_bank) for c in clip_rows(context, job_id)] == [(0, 0), (0, 1)]
    assert not [k for k in object_keys(context) if "clip-0002" in k or "/banks/0001/" in k]
    # a late redelivery of a cancelled job does nothing
    assert process_job(context, job_id) == JobStatus.cancelled


def test_worker_shutdown_requeues_the_job_uncounted_and_it_resumes(
    context: WorkerContext, submit: Callable[..., uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = submit()
    with context.sessions() as session:
        model = context.models.get(session.get_one(Job, job_id).model)
    real_denoise = model.pipeline.denoise_prepared
    calls: list[int] = []

    def denoise_then_shut_down(batch, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(batch.noise))
        if len(calls) == 2:
            SHUTDOWN.set()  # Ctrl-C / SIGTERM: Celery's worker_shutting_down signal
        return real_denoise(batch, *args, **kwargs)

    monkeypatch.setattr(model.pipeline, "denoise_prepared", denoise_then_shut_down)
    try:
        with pytest.raises(RequeueJob, match="shutting down"):
            process_job(context, job_id)
    finally:
        SHUTDOWN.clear()
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.status, job.deliveries, job.clips_done) == (JobStatus.generating, 0, 2)
    monkeypatch.setattr(model.pipeline, "denoise_prepared", real_denoise)
    assert process_job(context, job_id) == JobStatus.succeeded
    clips = clip_rows(context, job_id)
    assert len(clips) == 6 and len({(c.bank_id, c.index_in_bank) for c in clips}) == 6
    with context.sessions() as session:
        assert session.get_one(Job, job_id).deliveries == 1


def test_a_clip_refused_by_the_object_store_is_sampled_again_by_the_next_delivery(
    context: WorkerContext, submit: Callable[..., uuid.UUID], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The S3 outage of `make faults` (docs/reliability.md): the client's retries for clip (0, 1) run out
    while S3 is down, S3 is back for the clips queued behind it. The failed clip's bank must not be marked
    done, the writer stores nothing after the failure, and the next delivery samples the clip again."""
    job_id = submit()
    refused_key = clip_object_key(job_id, 0, 1)
    real_put = context.store.put
    refused: list[str] = []

    def put_refusing_once(key: str, data: Any, content_type: str = "application/octet-stream") -> Any:
        if key == refused_key and not refused:
            refused.append(key)
            raise urllib3.exceptions.MaxRetryError(None, f"/{key}", "connection refused")  # type: ignore[arg-type]
        return real_put(key, data, content_type=content_type)

    monkeypatch.setattr(context.store, "put", put_refusing_once)
    with pytest.raises(RetryJob, match=f"MaxRetryError.*{refused_key}"):
        process_job(context, job_id)
    with context.sessions() as session:
        job = session.get_one(Job, job_id)
        assert [b.status for b in job.banks] == [BankStatus.generating, BankStatus.generating]
        assert (job.status, job.clips_done, job.banks_done) == (JobStatus.generating, 1, 0)
    assert [(c.bank.index, c.index_in_bank) for c in clip_rows(context, job_id)] == [(0, 0)]
    assert process_job(context, job_id) == JobStatus.succeeded
    clips = clip_rows(context, job_id)
    assert [(c.bank.index, c.index_in_bank) for c in clips] == [(b, i) for b in (0, 1) for i in range(3)]
    for clip in clips:
        data = context.store.get(clip.object_key)
        assert hashlib.sha256(data).hexdigest() == clip.sha256 and len(data) == clip.size_bytes
