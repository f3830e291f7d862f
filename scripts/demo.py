"""`make demo`: start the embedded service on the demo model, register the demo data build as a dataset,
submit a job that samples the way the paper does (§4.1: banks from the build's training clips, all four
conditions), follow it, print its filter counts beside its quality figures, download the filtered database
and verify it; then stop the service.

The demo data build (`ctrlgenaug data demo --out data/demo-dataset`) is built first when it is missing. The
demo job: `banks_from` the build, 2 training clips per class as banks (`max_banks`) × 3 clips each,
DPM-Solver++ with 25 steps (a fast solver selectable per job; the server default stays Table 1's DDIM 200), so
it finishes in minutes on a CPU.

    .venv/bin/python scripts/demo.py [--model models/demo] [--data data/demo-dataset] [--data-dir DIR]
                                     [--out data/demo-output] [--banks-per-class 2] [--samples 3] [--steps 25]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from cli.embedded_client import FINISHED_STATUSES, EmbeddedService

REPO = Path(__file__).resolve().parents[1]
DEMO_MODEL = REPO / "models" / "demo"
DEMO_DATA = REPO / "data" / "demo-dataset"
DEMO_DATASET = "demo-dataset"
DEMO_PROJECT = "demo"
BANKS_PER_CLASS = 2
SAMPLES_PER_BANK = 3
DEMO_SAMPLER = {"name": "dpmsolver++", "steps": 25, "guidance_scale": 7.5}
DEMO_SEED = 2024
READY_TIMEOUT_S = 300
JOB_TIMEOUT_S = 3 * 3600


QUALITY_ROWS = (
    ("clips", "clips"),
    ("coherence_generated", "coherence, generated"),
    ("coherence_real", "coherence, real"),
    ("coherence_ratio", "coherence ratio"),
    ("precision", "precision (k-NN)"),
    ("recall", "recall (k-NN)"),
    ("coverage", "coverage (k-NN)"),
    ("memorised_share", "memorised share"),
)


def demo_job(model: dict[str, Any], banks_per_class: int, samples: int, steps: int) -> dict[str, Any]:
    return {
        "model": f"{model['name']}:{model['version']}",
        "banks_from": {
            "dataset": DEMO_DATASET,
            "samples_per_bank": samples,
            "max_banks": banks_per_class * len(model["class_names"]),
        },
        "sampler": {**DEMO_SAMPLER, "steps": steps},
        "seed": DEMO_SEED,
    }


def ensure_data_build(data: Path) -> Path:
    """The data build's manifest, building the demo build first when it is missing."""
    manifest = data / "manifest.jsonl"
    if manifest.is_file():
        return manifest
    print(f"==> ctrlgenaug data demo --out {data}  (the demo data build is missing)", flush=True)
    built = subprocess.run([sys.executable, "-m", "cli.main", "data", "demo", "--out", str(data)], cwd=REPO)
    if built.returncode != 0 or not manifest.is_file():
        raise SystemExit(f"`ctrlgenaug data demo --out {data}` failed (code {built.returncode})")
    return manifest


def register_data_build(service: EmbeddedService, client: httpx.Client, manifest: Path) -> None:
    names = [dataset["name"] for dataset in client.get("/v1/datasets").json()]
    if DEMO_DATASET in names:
        return
    print(f"==> ctrlgenaug datasets register {manifest} --project {DEMO_PROJECT}", flush=True)
    registered = service.ctrlgenaug(
        "datasets", "register", str(manifest), "--project", DEMO_PROJECT, "--name", DEMO_DATASET
    )
    if registered.returncode != 0:
        raise SystemExit(f"`ctrlgenaug datasets register` failed:\n{registered.stderr}")
    print(f"    {registered.stdout.strip()}")


def _figure(value: float | None) -> str:
    if value is None:
        return "—"
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


def quality_table(results: dict[str, Any]) -> str:
    """The job's filter counts and its quality figures (kept clips per class and overall; all clips)."""
    dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(results["dropped_counts"].items()))
    lines = [f"    filter: kept {results['clips_kept']}, dropped {dropped or 'none'}, band {results['band']}"]
    if results["dropped_counts"].get("memorised"):
        lines.append(
            "    memorised: closer to a training clip than any two real patients are to each other. Banks from "
            "training clips give each clip its source's first frame and motion (§4.1), so a model that follows "
            "its conditions reproduces that patient; the privacy check drops those (docs/training.md)."
        )
    quality = results["quality"]
    if quality is None:
        return "\n".join([*lines, f"    quality: not measured: {results['quality_reason']}"])
    kept = quality["kept"]
    columns = [
        *((f"{name} kept", figures) for name, figures in kept["per_class"].items()),
        ("all kept", kept["overall"]),
        ("all clips", quality["all"]["overall"]),
    ]
    data = quality["data"]
    lines.append(
        f"    quality against dataset {data['dataset']} ({data['training_clips']} training clips, "
        f"manifest {data['manifest_sha256'][:12]}…):"
    )
    width = max(len(label) for _, label in QUALITY_ROWS)
    lines.append("    " + " " * width + "".join(f"{name:>14}" for name, _ in columns))
    for key, label in QUALITY_ROWS:
        lines.append("    " + f"{label:<{width}}" + "".join(f"{_figure(f[key]):>14}" for _, f in columns))
    return "\n".join(lines)


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


def run(
    model_dir: Path,
    manifest: Path,
    data_dir: Path,
    out_dir: Path,
    banks_per_class: int,
    samples: int,
    steps: int,
) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "service.log"
    with log_path.open("wb") as log:
        service = EmbeddedService(
            data_dir, model_dir, ready_timeout_s=READY_TIMEOUT_S, stdout=log, stderr=subprocess.STDOUT
        )
        print(
            f"==> starting `ctrlgenaug up --port {service.port}` (data in {data_dir}, its log in {log_path})",
            flush=True,
        )
        return submit_follow_download(service, manifest, out_dir, banks_per_class, samples, steps)


def submit_follow_download(
    service: EmbeddedService, manifest: Path, out_dir: Path, banks_per_class: int, samples: int, steps: int
) -> int:
    url = service.url
    with service, httpx.Client(base_url=url, timeout=60) as client:
        key = service.create_key(DEMO_PROJECT)
        client.headers["Authorization"] = f"Bearer {key}"
        model = client.get("/v1/models").json()[0]
        register_data_build(service, client, manifest)
        body = demo_job(model, banks_per_class, samples, steps)
        print(
            f"==> submitting: banks from {DEMO_DATASET}'s training clips, {banks_per_class} per class "
            f"({', '.join(model['class_names'])}) × {samples} clips, {DEMO_SAMPLER['name']} {steps} steps, "
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
        print(quality_table(job["results"]), flush=True)
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
    parser.add_argument(
        "--data",
        type=Path,
        default=DEMO_DATA,
        help="the data build whose training clips give the banks "
        "(default: data/demo-dataset, built with `ctrlgenaug data demo` when missing)",
    )
    parser.add_argument("--data-dir", type=Path, help="service data folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "demo-output", help="where the ZIP goes")
    parser.add_argument(
        "--banks-per-class", type=int, default=BANKS_PER_CLASS, help="training clips per class as banks"
    )
    parser.add_argument("--samples", type=int, default=SAMPLES_PER_BANK, help="clips per bank")
    parser.add_argument("--steps", type=int, default=DEMO_SAMPLER["steps"], help="solver steps")
    args = parser.parse_args()
    if not (args.model / "ctrlgenaug_model.json").is_file():
        print(
            f"The demo model is missing ({args.model}). Build it first with `make train-demo` "
            "(see docs/training.md), or pass --model PATH.",
            file=sys.stderr,
        )
        return 2
    manifest = ensure_data_build(args.data.resolve())
    sizes = (args.banks_per_class, args.samples, args.steps)
    if args.data_dir is not None:
        return run(args.model.resolve(), manifest, args.data_dir.resolve(), args.out.resolve(), *sizes)
    data_dir = Path(tempfile.mkdtemp(prefix="ctrlgenaug-demo-"))
    try:
        return run(args.model.resolve(), manifest, data_dir, args.out.resolve(), *sizes)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
