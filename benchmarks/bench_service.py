"""Service overhead: a job through the REST API vs the bare sampler on the same work, and API latency.

Starts the embedded service (`ctrlgenaug up`: API + one worker on SQLite, a local object folder and the
embedded broker, loopback only) in a temporary data folder on `--model` (default: a tiny model directory
built here: the tiny generator and a tiny classifier). Then:

1. a warm-up job (the worker loads the model), not counted;
2. the timed job: one bank per class x `--samples` clips, `--sampler`/`--steps`, seed 0. Its wall time
   (submission to `succeeded`, polled every 0.1 s) and the worker's stage timings are compared with
   `FastSampler.sample` in a fresh process on the same banks, clip seeds (`store.jobs.clip_seed`) and
   batch size (`CTRLGENAUG_WORKER_BATCH_SIZE`; clips of different banks share batches, as in the worker),
   run once before the service starts and once after it stops (their mean is the reference; on a shared
   machine the spread shows the noise). Overhead = (service - bare) / bare, for the worker's `generate`
   stage alone (what it adds around sampling: rows, objects, previews, progress, cancel polls) and for
   the whole job (plus queueing, filtering, export);
3. latency: `--clients` concurrent clients each submit `--submits` one-clip jobs and poll one of them
   `--polls` times; p50/p99 per request kind; the submitted jobs are cancelled afterwards.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_service.py --out results/service.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import diffusers
import httpx
import numpy as np
import torch

from cli.embedded_client import FINISHED_STATUSES, EmbeddedService
from generator.conditions import BankConditions
from generator.fast import FastPathSettings, FastSampler
from generator.pipeline import CtrlGenAugPipeline
from generator.sampling import SamplerSettings
from store.jobs import clip_seed

REPO = Path(__file__).resolve().parents[1]
JOB_SEED = 0


def build_tiny_model_dir(model_dir: Path) -> Path:
    """The tiny generator plus a tiny CSN semantic-filter classifier in `classifier/`."""
    from classify.checkpoint import save_classifier
    from classify.registry import build_classifier, build_kwargs
    from generator.pipeline import build_tiny_pipeline

    pipeline = build_tiny_pipeline(num_classes=3)
    pipeline.save_pretrained(model_dir)
    config = {
        "num_classes": 3,
        "in_channels": 1,
        "build_kwargs": build_kwargs("csn", tiny=True),
        "normalization": {"mean": 0.45, "std": 0.225},
        "class_names": list(pipeline.info.class_names),
        "frames": pipeline.info.num_frames,
    }
    save_classifier(model_dir / "classifier", build_classifier("csn", 3, tiny=True), "csn", config)
    return model_dir


def run_job(client: httpx.Client, body: dict[str, Any], timeout_s: float) -> tuple[dict[str, Any], float]:
    """Submit and poll every 0.1 s until finished: (the job, client wall seconds)."""
    start = time.perf_counter()
    response = client.post("/v1/jobs", json=body)
    response.raise_for_status()
    job_id = response.json()["id"]
    while time.perf_counter() - start < timeout_s:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINISHED_STATUSES:
            return job, time.perf_counter() - start
        time.sleep(0.1)
    raise SystemExit(f"job {job_id} did not finish in {timeout_s} s")


def bare_sampling_seconds(
    model_dir: Path, device: str, banks: int, samples: int, sampler: SamplerSettings, batch_size: int
) -> float:
    """The job's clips through `FastSampler` alone, batched as the worker batches them."""
    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir, device=device)
    fast = FastSampler(pipeline, FastPathSettings(max_clips_per_batch=batch_size))
    fast.sample([BankConditions(class_index=0)], [0], replace_steps(sampler, 2))  # warm-up
    clip_banks = [BankConditions(class_index=b) for b in range(banks) for _ in range(samples)]
    seeds = [clip_seed(JOB_SEED, b, i) for b in range(banks) for i in range(samples)]
    start = time.perf_counter()
    fast.sample(clip_banks, seeds, sampler)
    if pipeline.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bare_sampling_in_fresh_process(
    model_dir: Path, device: str, banks: int, samples: int, sampler: SamplerSettings, batch_size: int
) -> float:
    """`bare_sampling_seconds` in a new interpreter, so that it starts like the worker process does."""
    arguments = [str(model_dir), device, str(banks), str(samples), sampler.name, str(sampler.steps)]
    completed = subprocess.run(
        [sys.executable, __file__, "--bare", *arguments, str(batch_size)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def clip_writer_seconds(model_dir: Path, scratch: Path, frames: int, size: int, clips: int) -> float:
    """Seconds per clip the worker's clip writer spends storing an `frames x size x size` clip: NPZ and GIF
    preview encoding, two object writes and the row + counts + audit event, on the embedded SQLite
    service and local object folder. The worker does this on its writer thread while sampling goes on,
    so it is hidden as long as it is shorter than the sampling time per clip."""
    from migrations import upgrade
    from store.keys import get_or_create_project
    from store.models import Bank, Job
    from store.registry import register_model
    from worker.context import WorkerContext
    from worker.settings import WorkerSettings
    from worker.writer import ClipSlot, ClipWriter

    settings = WorkerSettings(environment="development", data_dir=scratch / "writer", worker_device="cpu")
    upgrade(settings.resolved_database_url)
    context = WorkerContext.from_settings(settings, lambda task, payload: None)
    with context.sessions() as session:
        record = register_model(session, model_dir)
        project = get_or_create_project(session, "writer-bench")
        bank = Bank(index=0, class_label="c", class_index=0, samples=clips)
        job = Job(
            project_id=project.id,
            model_id=record.id,
            request={},
            seed=0,
            sampler={},
            filter_settings={},
            banks=[bank],
            banks_total=1,
            clips_total=clips,
            dropped_counts={},
            timings={},
        )
        session.add(job)
        session.commit()
        ids = (project.id, job.id, bank.id)
    rng = np.random.default_rng(0)
    # smooth content (like decoded frames), so that compression does typical work
    base = rng.integers(0, 256, size=(frames, size // 8, size // 8), dtype=np.uint8)
    clip = np.kron(base, np.ones((8, 8), dtype=np.uint8))
    execution = {  # a GPU worker's record, as the writer stores it with every clip
        "device": "NVIDIA H200",
        "precision": "bf16",
        "cast_unet": False,
        "channels_last": False,
        "compile_mode": None,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
    }
    start = time.perf_counter()
    with ClipWriter(context.sessions, context.store, execution) as writer:
        for i in range(clips):
            writer.submit(ClipSlot(*ids, 0, i, i, 0, record.checksum), clip)
    seconds = (time.perf_counter() - start) / clips
    context.engine.dispose()
    return seconds


def replace_steps(sampler: SamplerSettings, steps: int) -> SamplerSettings:
    return SamplerSettings(name=sampler.name, steps=steps, guidance_scale=sampler.guidance_scale)


async def latency(url: str, key: str, model: str, clients: int, submits: int, polls: int) -> dict[str, Any]:
    """`clients` concurrent clients: each submits `submits` one-clip jobs, then polls one `polls` times."""
    body = {
        "model": model,
        "banks": [{"samples": 1}],
        "sampler": {"name": "ddim", "steps": 1},
        "seed": 1,
    }
    times: dict[str, list[float]] = {"submit": [], "status": []}
    errors: dict[str, int] = {"submit": 0, "status": 0}
    job_ids: list[str] = []
    limits = httpx.Limits(max_connections=clients)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as client:

        async def timed(kind: str, request: Any) -> httpx.Response | None:
            start = time.perf_counter()
            try:
                response = await request
            except httpx.HTTPError:
                errors[kind] += 1
                return None
            times[kind].append(time.perf_counter() - start)
            if response.status_code >= 400:
                errors[kind] += 1
                return None
            return response

        async def one_client() -> None:
            mine = []
            for _ in range(submits):
                response = await timed("submit", client.post("/v1/jobs", json=body))
                if response is not None:
                    mine.append(response.json()["id"])
            job_ids.extend(mine)
            for i in range(polls if mine else 0):
                await timed("status", client.get(f"/v1/jobs/{mine[i % len(mine)]}"))

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        seconds = time.perf_counter() - start
        for job_id in job_ids:
            await client.post(f"/v1/jobs/{job_id}/cancel")
    summary: dict[str, Any] = {"clients": clients, "seconds": seconds}
    for kind, values in times.items():
        ms = np.array(values) * 1e3
        summary[kind] = {
            "requests": len(values),
            "errors": errors[kind],
            "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
            "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
            "max_ms": float(ms.max()) if len(ms) else None,
            "per_second": len(values) / seconds,
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model directory (default: a tiny one built here)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples", type=int, default=8, help="clips per bank (one bank per class)")
    parser.add_argument("--sampler", default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=4, help="CTRLGENAUG_WORKER_BATCH_SIZE")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--submits", type=int, default=2, help="jobs each client submits")
    parser.add_argument("--polls", type=int, default=20, help="status requests each client sends")
    parser.add_argument("--job-timeout-s", type=float, default=1800)
    parser.add_argument(
        "--writer-clips", type=int, default=20, help="8x256x256 clips timed through the clip writer"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-service-") as scratch:
        root = Path(scratch)
        model_dir = args.model or build_tiny_model_dir(root / "model")
        settings = SamplerSettings(name=args.sampler, steps=args.steps)
        classes = len(CtrlGenAugPipeline.from_pretrained(model_dir).info.class_names)
        bare_runs = [
            bare_sampling_in_fresh_process(
                model_dir, args.device, classes, args.samples, settings, args.batch_size
            )
        ]
        worker_env = {
            "CTRLGENAUG_WORKER_BATCH_SIZE": str(args.batch_size),
            "CTRLGENAUG_WORKER_DEVICE": args.device,
        }
        service = EmbeddedService(root / "data", model_dir, worker_env, stdout=subprocess.DEVNULL)
        url = service.url
        with service, httpx.Client(base_url=url, timeout=60) as client:
            key = service.create_key("bench")
            client.headers["Authorization"] = f"Bearer {key}"
            model = client.get("/v1/models").json()[0]
            name = f"{model['name']}:{model['version']}"
            sampler = {"name": args.sampler, "steps": args.steps, "guidance_scale": 7.5}
            warm = {"model": name, "banks": [{"samples": 1}], "sampler": sampler}
            run_job(client, {**warm, "sampler": {**sampler, "steps": 2}}, args.job_timeout_s)
            banks = [{"class_label": c, "samples": args.samples} for c in model["class_names"]]
            body = {"model": name, "banks": banks, "sampler": sampler, "seed": JOB_SEED}
            job, job_seconds = run_job(client, body, args.job_timeout_s)
            if job["status"] != "succeeded":
                raise SystemExit(f"the timed job ended {job['status']}: {job['error']}")
            load = asyncio.run(latency(url, key, name, args.clients, args.submits, args.polls))
        bare_runs.append(
            bare_sampling_in_fresh_process(
                model_dir, args.device, classes, args.samples, settings, args.batch_size
            )
        )
        writer_seconds = clip_writer_seconds(model_dir, root, 8, 256, args.writer_clips)
    bare = float(np.mean(bare_runs))

    clips = len(banks) * args.samples
    generating = float(job["timings"]["generate"])
    results = {
        "device": args.device,
        "model": name,
        "clips": clips,
        "sampler": sampler,
        "batch_size": args.batch_size,
        "bare_sampling_seconds": bare_runs,
        "job_seconds": job_seconds,
        "job_timings": job["timings"],
        "generating_overhead": (generating - bare) / bare,
        "job_overhead": (job_seconds - bare) / bare,
        "latency": load,
        "clip_writer_seconds_per_8x256x256_clip": writer_seconds,
    }
    print(f"\n{clips} clips, {args.sampler} {args.steps} steps, batch {args.batch_size}, {args.device}\n")
    print("| work | seconds | s/clip | overhead vs bare sampler |")
    print("|---|---:|---:|---:|")
    runs = " / ".join(f"{b:.2f}" for b in bare_runs)
    print(f"| bare `FastSampler.sample`, fresh process (before / after) | {runs} | {bare / clips:.3f} | — |")
    print(f"| job stage `generate` | {generating:.2f} | {generating / clips:.3f} | "
          f"{results['generating_overhead']:+.1%} |")  # fmt: skip
    for stage, seconds in job["timings"].items():
        if stage != "generate":
            print(f"| job stage `{stage}` | {seconds:.2f} | {seconds / clips:.3f} | |")
    print(f"| whole job through the API | {job_seconds:.2f} | {job_seconds / clips:.3f} | "
          f"{results['job_overhead']:+.1%} |")  # fmt: skip
    print(f"\nclip writer (off the sampling thread): {writer_seconds * 1e3:.0f} ms per 8x256x256 clip")
    print(f"\n{load['clients']} concurrent clients, loopback, embedded service (SQLite):\n")
    print("| request | count | errors | p50 ms | p99 ms | max ms | per s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in ("submit", "status"):
        s = load[kind]
        if s["p50_ms"] is None:
            print(f"| {kind} | 0 | {s['errors']} | — | — | — | 0 |")
            continue
        print(
            f"| {kind} | {s['requests']} | {s['errors']} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | "
            f"{s['max_ms']:.1f} | {s['per_second']:.0f} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--bare"]:
        model, device, banks, samples, name, steps, batch = sys.argv[2:9]
        bare_settings = SamplerSettings(name=name, steps=int(steps))
        print(bare_sampling_seconds(Path(model), device, int(banks), int(samples), bare_settings, int(batch)))
    else:
        main()
