"""`make demo`: start the embedded service on the demo model, submit a job through the REST API, follow
it, download the filtered database and verify it; then stop the service.

The demo job: one bank per class of the demo model (US, CT, MR) × 8 clips, DPM-Solver++ with 25 steps
(a fast solver selectable per job; the server default stays Table 1's DDIM 200), so it finishes in minutes on
a CPU. Eight clips per bank give the job-level K-means band (K = 4) enough clips to keep some.

    .venv/bin/python scripts/demo.py [--model models/demo] [--data-dir DIR] [--out data/demo-output]
                                     [--samples 8] [--steps 25]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from cli.embedded_client import FINISHED_STATUSES, EmbeddedService

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "models" / "demo"
SAMPLES_PER_BANK = 8
DEMO_SAMPLER = {"name": "dpmsolver++", "steps": 25, "guidance_scale": 7.5}
DEMO_SEED = 2024
READY_TIMEOUT_S = 300
JOB_TIMEOUT_S = 3 * 3600


def demo_job(model: dict[str, Any], samples: int, steps: int) -> dict[str, Any]:
    return {
        "model": f"{model['name']}:{model['version']}",
        "banks": [{"class_label": name, "samples": samples} for name in model["class_names"]],
        "sampler": {**DEMO_SAMPLER, "steps": steps},
        "seed": DEMO_SEED,
    }


def phase_text(progress: dict[str, Any]) -> str:
    """The job's phase; while sampling, the batch, denoising step and the API's ETA."""
    phase = progress["phase"]
    if phase != "sampling":
        return (phase or "").replace("_", " ")
    eta = progress["eta_seconds"]
    return (
        f"sampling batch {progress['batch']}/{progress['batches']}  step "
        f"{progress['denoise_step']}/{progress['denoise_steps']}  about {eta:.0f} s left"
    )


def follow(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        p = job["progress"]
        line = (
            f"{job['status']:<10} banks {p['banks_done']}/{p['banks_total']}  clips {p['clips_done']}/"
            f"{p['clips_total']}  {phase_text(p)}"
        )
        if line != last:
            print(f"  {line}", flush=True)
            last = line
        if job["status"] in FINISHED_STATUSES:
            return job
        time.sleep(2)
    raise SystemExit(f"job {job_id} did not finish in {JOB_TIMEOUT_S} s")


def run(model_dir: Path, data_dir: Path, out_dir: Path, samples: int, steps: int) -> int:
    service = EmbeddedService(data_dir, model_dir, ready_timeout_s=READY_TIMEOUT_S)
    print(f"==> starting `ctrlgenaug up --port {service.port}` (data in {data_dir})", flush=True)
    url = service.url
    with service, httpx.Client(base_url=url, timeout=60) as client:
        key = service.create_key("demo")
        client.headers["Authorization"] = f"Bearer {key}"
        model = client.get("/v1/models").json()[0]
        body = demo_job(model, samples, steps)
        print(
            f"==> submitting: {len(body['banks'])} banks ({', '.join(model['class_names'])}) × "
            f"{samples} clips, {DEMO_SAMPLER['name']} {steps} steps, "
            f"model {model['name']} {model['version']}",
            flush=True,
        )
        submitted = client.post("/v1/jobs", json=body)
        submitted.raise_for_status()
        started = time.monotonic()
        job = follow(client, submitted.json()["id"])
        print(f"==> job {job['id']} {job['status']} in {time.monotonic() - started:.0f} s", flush=True)
        if job["status"] != "succeeded":
            print(f"error: {job['error']}", file=sys.stderr)
            return 1
        results = job["results"]
        kept, dropped = results["clips_kept"], results["dropped_counts"]
        print(f"    kept {kept}, dropped {dropped}, consistency band {results['band']}")
        out_dir.mkdir(parents=True, exist_ok=True)
        database = out_dir / f"ctrlgenaug-demo-{job['id']}.zip"
        with client.stream("GET", f"/v1/jobs/{job['id']}/database") as response:
            response.raise_for_status()
            with database.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        print(f"==> ctrlgenaug verify {database} --api {url}", flush=True)
        verified = service.ctrlgenaug("verify", str(database), "--api", url, "--key", key)
        print(verified.stdout.strip() or verified.stderr.strip())
        if verified.returncode != 0:
            print(verified.stderr, file=sys.stderr)
            return 1
        print(f"==> the filtered database is at {database}")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=DEMO_MODEL, help="model directory (default: models/demo)"
    )
    parser.add_argument("--data-dir", type=Path, help="service data folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "demo-output", help="where the ZIP goes")
    parser.add_argument(
        "--samples", type=int, default=SAMPLES_PER_BANK, help="clips per bank (one bank per class)"
    )
    parser.add_argument("--steps", type=int, default=DEMO_SAMPLER["steps"], help="solver steps")
    args = parser.parse_args()
    if not (args.model / "ctrlgenaug_model.json").is_file():
        print(
            f"The demo model is missing ({args.model}). Build it first with `make train-demo` "
            "(see docs/training.md), or pass --model PATH.",
            file=sys.stderr,
        )
        return 2
    if args.data_dir is not None:
        return run(
            args.model.resolve(), args.data_dir.resolve(), args.out.resolve(), args.samples, args.steps
        )
    data_dir = Path(tempfile.mkdtemp(prefix="ctrlgenaug-demo-"))
    try:
        return run(args.model.resolve(), data_dir, args.out.resolve(), args.samples, args.steps)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
