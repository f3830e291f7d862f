"""`ctrlgenaug jobs ...` and `ctrlgenaug assets upload` against a live embedded service, as users run them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
from live_service import DATASET, TINY_SAMPLER, LiveService

REPO = Path(__file__).resolve().parents[2]
RUNNING = ("queued", "generating", "filtering", "exporting")


def ctrlgenaug(live: LiveService, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=live.env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_submit_banks_from_watch_and_download_verified(live: LiveService, tmp_path: Path) -> None:
    submitted = ctrlgenaug(
        live,
        "jobs", "submit", "--banks-from", DATASET, "--model", live.model, "--class", "class_2",
        "--samples-per-bank", "1", "--sampler", TINY_SAMPLER["name"], "--steps", str(TINY_SAMPLER["steps"]),
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert f"job {job_id} queued: 2 banks, 2 clips, 3 steps each" in submitted.stderr

    watched = ctrlgenaug(live, "jobs", "watch", job_id, "--poll", "0.5")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.startswith(f"job {job_id} succeeded: ")
    assert " of 2 clips kept" in watched.stdout

    downloaded = ctrlgenaug(live, "jobs", "download", job_id, "--out", str(tmp_path / "db"))
    assert downloaded.returncode == 0, downloaded.stderr
    database = tmp_path / "db" / f"ctrlgenaug-{job_id}.zip"
    assert downloaded.stdout.startswith("OK ") and " files verified against the service" in downloaded.stdout
    assert str(database) in downloaded.stdout
    with zipfile.ZipFile(database) as archive:
        assert "manifest.csv" in archive.namelist()


def test_submit_a_json_file_then_cancel(live: LiveService, tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    job_file.write_text(
        json.dumps(
            {
                "model": live.model,
                "banks": [{"class_label": "class_0", "samples": 40}],
                "sampler": TINY_SAMPLER,
            }
        )
    )
    submitted = ctrlgenaug(live, "jobs", "submit", str(job_file), "--seed", "5")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    cancelled = ctrlgenaug(live, "jobs", "cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() in (
        f"job {job_id} cancelled",
        *(f"job {job_id} {status}: cancel requested, it stops between denoising steps" for status in RUNNING),
    )
    watched = ctrlgenaug(live, "jobs", "watch", job_id, "--poll", "0.5")
    assert watched.returncode == 1
    assert watched.stdout.startswith(f"job {job_id} cancelled: ")


def test_assets_upload_prints_the_asset_id(live: LiveService, tmp_path: Path) -> None:
    prior = tmp_path / "prior.npy"
    np.save(prior, np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    uploaded = ctrlgenaug(live, "assets", "upload", str(prior), "--kind", "image_prior")
    assert uploaded.returncode == 0, uploaded.stderr
    assert uuid.UUID(uploaded.stdout.strip())
    assert uploaded.stderr.startswith("image_prior prior.npy [32, 32] sha256:")


def test_errors_are_one_line_naming_the_setting_or_field(live: LiveService, tmp_path: Path) -> None:
    missing_url = ctrlgenaug(live, "jobs", "watch", "x", CTRLGENAUG_URL="")
    assert missing_url.returncode == 2
    assert missing_url.stderr.startswith("error: CTRLGENAUG_URL: not set; export it")
    missing_key = ctrlgenaug(live, "jobs", "watch", "x", CTRLGENAUG_API_KEY="")
    assert missing_key.stderr.startswith("error: CTRLGENAUG_API_KEY: not set; export it")
    wrong_key = ctrlgenaug(live, "jobs", "cancel", str(uuid.uuid4()), "--key", "cga_wrong")
    assert wrong_key.returncode == 2
    assert wrong_key.stderr == (
        "error: Authorization: invalid or revoked API key (401; check --key / CTRLGENAUG_API_KEY)\n"
    )
    unknown = str(uuid.uuid4())
    not_found = ctrlgenaug(live, "jobs", "watch", unknown)
    assert not_found.stderr == "error: job_id: job not found (404 in this key's project)\n"
    no_dataset = ctrlgenaug(live, "jobs", "submit", "--banks-from", "nope", "--model", live.model)
    assert no_dataset.stderr == "error: banks_from.dataset: dataset 'nope' not found in this project (422)\n"
    bad_format = ctrlgenaug(live, "jobs", "download", unknown, "--out", str(tmp_path), "--format", "dicom")
    assert bad_format.stderr == "error: format: Input should be 'npz' or 'nifti' (422)\n"
    local = ctrlgenaug(
        live, "jobs", "submit", "--banks-from", DATASET, "--model", live.model, "--samples-per-bank", "0"
    )
    assert local.stderr == "error: banks_from.samples_per_bank: Input should be greater than or equal to 1\n"
    assert "Traceback" not in "".join(
        r.stderr for r in (missing_url, wrong_key, not_found, no_dataset, local)
    )
