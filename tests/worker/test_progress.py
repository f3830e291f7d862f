"""A job's progress as the worker writes it: its phases in order, and while sampling the batch and an ETA
from the measured denoising steps."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from store.models import Job, JobPhase, JobStatus
from worker.context import WorkerContext
from worker.jobs import process_job
from worker.monitor import JobMonitor
from worker.progress import SamplingClock


def test_the_clock_times_each_batch_by_its_own_steps() -> None:
    # plan made at 0; batch 1's first step at 2 (its conditions took 1 s), then 1 s per step; batch 2
    # starts at 7 after decoding batch 1
    times = iter([0, 2, 3, 4, 5, 7, 8, 9, 10])
    clock = SamplingClock(batches=2, clock=lambda: next(times))
    etas = [clock.step(step, 4) for step in (1, 2, 3, 4, 1, 2, 3, 4)]
    assert etas == [14, 6, 5, 4, 3, 2, 1, 0]
    assert clock.batch == 2


def test_a_job_reports_its_phases_in_order_and_an_eta_while_sampling(
    context: WorkerContext,
    submit: Callable[..., uuid.UUID],
    api: TestClient,
    headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id = submit()  # 6 clips, at most 2 a batch (the tiny fast path): 3 batches of 3 steps
    seen: list[tuple[JobPhase | None, int, int, int, float | None]] = []
    write = JobMonitor._write

    def write_and_read_back(monitor: JobMonitor, **values: object) -> None:
        write(monitor, **values)
        with context.sessions() as session:
            job = session.get_one(Job, job_id)
            seen.append((job.phase, job.batch, job.batches, job.denoise_step, job.eta_seconds))

    monkeypatch.setattr(JobMonitor, "_write", write_and_read_back)
    assert process_job(context, job_id) == JobStatus.succeeded

    assert [phase for phase, _ in itertools.groupby(row[0] for row in seen)] == [
        JobPhase.loading_model,
        JobPhase.preparing_conditions,
        JobPhase.sampling,
        JobPhase.filtering,
        JobPhase.exporting,
    ]
    sampling = [row[1:] for row in seen if row[0] == JobPhase.sampling]
    assert [(batch, batches, step) for batch, batches, step, _ in sampling] == [
        (batch, 3, step) for batch in (1, 2, 3) for step in (1, 2, 3)
    ]
    etas = [eta for *_, eta in sampling]
    assert all(eta is not None and eta > 0 for eta in etas[:-1]) and etas[-1] == 0
    assert all(row[4] is None for row in seen if row[0] != JobPhase.sampling)

    progress = api.get(f"/v1/jobs/{job_id}", headers=headers).json()["progress"]
    assert progress["phase"] is None and progress["eta_seconds"] is None
