"""Faults injected while a job of several banks is in flight, on a private deployment (fault_environment.py):
SIGKILL of the worker, Redis restart, PostgreSQL restart, S3 down for 10 s, S3 answering errors.

After each: the job ends `succeeded`, or `failed` with a reason; every clip row has its object with the
recorded SHA-256; no clip twice; the orphan sweeper finds nothing of a succeeded job; the audit chain
verifies; a succeeded job's database ZIP verifies. `faults` runs one round of each; `chaos` runs 20 cycles
(`CTRLGENAUG_CHAOS_CYCLES`) of every fault in sequence (worker, Redis, PostgreSQL, then the two S3 faults) on
one deployment while a load generator keeps every core busy: 20 consecutive rounds of each S3 fault, each
after the other faults.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import pytest
from fault_environment import (
    FaultEnvironment,
    RoundRecord,
    check_round,
    close_fault_environment,
    open_fault_environment,
)

from store.models import FINISHED_JOB_STATUSES

CHAOS_CYCLES = int(os.environ.get("CTRLGENAUG_CHAOS_CYCLES", "20"))
CHAOS_ORDER = ("sigkill-worker", "restart-redis", "restart-postgres", "s3-down-10s", "s3-errors")
ROUND_BUDGET_S = 600  # a round takes 0.5-5.5 min on the shared 2-core box; pytest-timeout gets this per round
REPORT_ENV = "CTRLGENAUG_RELIABILITY_REPORT"


def sigkill_worker(env: FaultEnvironment) -> None:
    env.worker.kill()
    env.worker.start()


def restart_redis(env: FaultEnvironment) -> None:
    env.redis.restart(down_s=3)


def restart_postgres(env: FaultEnvironment) -> None:
    env.postgres.restart(down_s=2)


def stop_s3_for_10_s(env: FaultEnvironment) -> None:
    env.proxy.set_fault("refuse")
    time.sleep(10)
    env.proxy.set_fault("none")


def s3_errors(env: FaultEnvironment) -> None:
    """Half of the new S3 connections answered 503 (and open ones cut) for 8 s."""
    env.proxy.set_fault("error", rate=0.5, error_status=503)
    time.sleep(8)
    env.proxy.set_fault("none")


FAULTS: dict[str, Callable[[FaultEnvironment], None]] = {
    "sigkill-worker": sigkill_worker,
    "restart-redis": restart_redis,
    "restart-postgres": restart_postgres,
    "s3-down-10s": stop_s3_for_10_s,
    "s3-errors": s3_errors,
}


@pytest.fixture(scope="module")
def fault_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultEnvironment]:
    env = open_fault_environment(tmp_path_factory.mktemp("faults"))
    try:
        yield env
    finally:
        close_fault_environment(env)
        print_report(env.records)


def print_report(records: list[RoundRecord]) -> None:
    if not records:
        return
    print(f"\nfault rounds: {len(records)}")
    for record in records:
        print("  " + json.dumps(asdict(record)))


def report_round(record: RoundRecord) -> None:
    """Append the round to `CTRLGENAUG_RELIABILITY_REPORT` as it ends (a run cut short keeps its rounds)."""
    if os.environ.get(REPORT_ENV):
        with open(os.environ[REPORT_ENV], "a") as out:
            out.write(json.dumps(asdict(record)) + "\n")


def trigger_for(round_index: int, clips_total: int) -> tuple[int, float]:
    """Inject after this many clips are stored (0: while queued; all: while filtering or exporting), plus
    this delay: a different point of the job in each round."""
    return (1 + 3 * round_index) % (clips_total + 1), 0.4 * (round_index % 3)


def run_round(env: FaultEnvironment, fault: str, round_index: int) -> RoundRecord:
    env.proxy.set_fault("none")
    env.worker.ensure_running()
    started = time.monotonic()
    job_id = env.submit(seed=1000 * round_index + len(env.records))
    clips_total = env.job(job_id).clips_total
    after_clips, delay = trigger_for(round_index, clips_total)
    env.wait_for(
        lambda: env.clips_stored(job_id) >= after_clips or env.job(job_id).status in FINISHED_JOB_STATUSES,
        240,
        f"{after_clips} clips of job {job_id}",
    )
    time.sleep(delay)
    during = env.job(job_id).status.value
    faulted_before = env.proxy.counters.faulted
    FAULTS[fault](env)
    injected = env.proxy.counters.faulted - faulted_before if fault == "s3-errors" else 1
    env.wait_until_finished(job_id)
    counts = check_round(env, job_id)
    record = RoundRecord(
        fault=fault,
        trigger=f"after {after_clips} clips + {delay:.1f} s",
        injected_during=during,
        injected=injected,
        seconds=round(time.monotonic() - started, 1),
        **counts,
    )
    env.records.append(record)
    report_round(record)
    return record


@pytest.mark.faults
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_one_round_of_each_fault(fault_env: FaultEnvironment, fault: str) -> None:
    record = run_round(fault_env, fault, round_index=0)
    assert (record.lost, record.duplicates) == (0, 0)


@pytest.fixture
def cpu_load() -> Iterator[int]:
    """One busy-looping process per core for the test's duration; yields how many."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)
    ]
    try:
        yield len(spinners)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait(timeout=30)


@pytest.mark.chaos
@pytest.mark.timeout(CHAOS_CYCLES * len(CHAOS_ORDER) * ROUND_BUDGET_S)
def test_cycles_of_every_fault_under_cpu_load(fault_env: FaultEnvironment, cpu_load: int) -> None:
    records = [
        run_round(fault_env, fault, round_index)
        for round_index in range(1, CHAOS_CYCLES + 1)
        for fault in CHAOS_ORDER
    ]
    print(
        f"\nchaos: {CHAOS_CYCLES} cycles, {len(records)} rounds, {cpu_load} load processes, "
        f"load average {os.getloadavg()}"
    )
    assert [r.fault for r in records] == list(CHAOS_ORDER) * CHAOS_CYCLES
    assert (sum(r.lost for r in records), sum(r.duplicates for r in records)) == (0, 0)
