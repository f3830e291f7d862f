"""Fair share between projects: after its slice (`worker_fair_share_slice_s`), between batches, a job yields
to a queued job of another project and goes to the back of the queue, uncounted; it resumes from its stored
clips and each clip is stored once. Turns rotate by project first, then by job within the project."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from store.models import AuditEvent, BankStatus, Clip, Job, JobStatus
from store.outbox import RUN_JOB_TASK
from worker.context import WorkerContext
from worker.jobs import BUSY, process_job
from worker.locks import job_lock
from worker.turns import run_turn


def test_a_long_job_yields_to_another_projects_job_between_batches(
    context: WorkerContext,
    submit: Callable[..., uuid.UUID],
    api: TestClient,
    make_key: Callable[[str], dict[str, str]],
    model_name: str,
    sender: object,
) -> None:
    ctx = dataclasses.replace(
        context, settings=context.settings.model_copy(update={"worker_fair_share_slice_s": 0.0})
    )
    long_job = submit()  # 2 banks × 3 clips: three batches of 2
    other = api.post(
        "/v1/jobs",
        headers=make_key("other-project"),
        json={
            "model": model_name,
            "banks": [{"class_label": "class_1", "samples": 1}],
            "sampler": {"name": "ddim", "steps": 3, "guidance_scale": 2.0},
            "seed": 5,
        },
    )
    assert other.status_code == 202, other.text
    other_job = uuid.UUID(other.json()["id"])

    assert process_job(ctx, long_job) == JobStatus.queued
    with ctx.sessions() as session:
        job = session.get_one(Job, long_job)
        assert (job.status, job.deliveries, job.clips_done) == (JobStatus.queued, 0, 2)
        assert job.started_at is not None and job.finished_at is None
        assert [b.status for b in job.banks] == [BankStatus.pending, BankStatus.pending]
        started_at = job.started_at
    assert sender.sent[-1] == (RUN_JOB_TASK, {"job_id": str(long_job)})  # type: ignore[attr-defined]

    # the other project's one-batch job runs to the end: the long job waits in the queue meanwhile
    assert process_job(ctx, other_job) == JobStatus.succeeded
    assert process_job(ctx, long_job) == JobStatus.succeeded  # nothing else waits: no more yielding
    with ctx.sessions() as session:
        job = session.get_one(Job, long_job)
        assert (job.deliveries, job.clips_done, job.started_at) == (1, 6, started_at)
        clips = session.scalars(select(Clip).where(Clip.job_id == long_job)).all()
        expected = [(b, i) for b in (0, 1) for i in range(3)]
        assert sorted((c.bank.index, c.index_in_bank) for c in clips) == expected
        kinds = session.scalars(
            select(AuditEvent.kind).where(AuditEvent.project_id == job.project_id).order_by(AuditEvent.seq)
        ).all()
        assert kinds.count("job.started") == 1 and kinds[-1] == "job.succeeded"


def test_without_another_project_waiting_a_job_does_not_yield(
    context: WorkerContext, submit: Callable[..., uuid.UUID]
) -> None:
    ctx = dataclasses.replace(
        context, settings=context.settings.model_copy(update={"worker_fair_share_slice_s": 0.0})
    )
    first, second = submit(), submit(seed=12)  # the same project's queued job is no reason to yield
    assert process_job(ctx, first) == JobStatus.succeeded
    with ctx.sessions() as session:
        assert session.get_one(Job, first).deliveries == 1
        assert session.get_one(Job, second).status == JobStatus.queued


def test_turns_rotate_by_project_then_by_job_within_the_project(
    context: WorkerContext,
    submit: Callable[..., uuid.UUID],
    api: TestClient,
    make_key: Callable[[str], dict[str, str]],
    model_name: str,
    sender: object,
) -> None:
    ctx = dataclasses.replace(
        context, settings=context.settings.model_copy(update={"worker_fair_share_slice_s": 0.0})
    )
    busy = [submit(seed=seed) for seed in (1, 2, 3)]  # one project, three jobs of three batches each
    other = api.post(
        "/v1/jobs",
        headers=make_key("other-project"),
        json={
            "model": model_name,
            "banks": [{"class_label": "class_1", "samples": 3}, {"class_label": "class_2", "samples": 3}],
            "sampler": {"name": "ddim", "steps": 3, "guidance_scale": 2.0},
            "seed": 5,
        },
    )
    assert other.status_code == 202, other.text
    lone = uuid.UUID(other.json()["id"])
    names = {busy[0]: "A1", busy[1]: "A2", busy[2]: "A3", lone: "B1"}

    def turn_times() -> dict[uuid.UUID, object]:
        with ctx.sessions() as session:
            return dict(session.execute(select(Job.id, Job.turn_at)).tuples().all())

    queue = sender.sent  # type: ignore[attr-defined]
    assert [names[uuid.UUID(payload["job_id"])] for _, payload in queue] == ["A1", "A2", "A3", "B1"]
    ran, messages = [], 0
    while messages < len(queue):  # the broker: first in, first out; a turn may add messages at the back
        before = turn_times()
        message_job = uuid.UUID(queue[messages][1]["job_id"])
        messages += 1
        job_id, _ = run_turn(ctx, message_job)
        after = turn_times()
        if after[job_id] != before[job_id]:  # a delivery began (not a message for a finished job)
            ran.append(names[job_id])

    # B's one job has every other turn however many jobs A queued; A's jobs take A's turns in rotation
    assert ran == ["A1", "B1", "A2", "B1", "A3", "B1", "A1", "A2", "A3"]
    with ctx.sessions() as session:
        jobs = session.scalars(select(Job)).all()
        assert sorted((names[j.id], j.status, j.deliveries, j.clips_done) for j in jobs) == [
            (name, JobStatus.succeeded, 1, 6) for name in ("A1", "A2", "A3", "B1")
        ]
        clips = session.scalars(select(Clip)).all()
        assert len(clips) == 24 and len({(c.job_id, c.bank.index, c.index_in_bank) for c in clips}) == 24


def test_a_queued_job_held_by_its_previous_runner_keeps_a_message(
    context: WorkerContext, submit: Callable[..., uuid.UUID], sender: object
) -> None:
    job_id = submit()
    sent = len(sender.sent)  # type: ignore[attr-defined]
    with job_lock(context.engine, job_id) as held:  # as by the runner that has just yielded it
        assert held
        assert run_turn(context, job_id) == (job_id, BUSY)
    assert sender.sent[sent:] == [(RUN_JOB_TASK, {"job_id": str(job_id)})]  # type: ignore[attr-defined]
    assert run_turn(context, job_id) == (job_id, JobStatus.succeeded)
