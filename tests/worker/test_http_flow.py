"""The whole flow through HTTP with the tiny model: submit → worker → succeeded → download → verify, and a
clip's provenance matches its file."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.main import app as cli_app
from store.export import verify_database_zip
from store.outbox import RUN_JOB_TASK
from worker.celery_app import create_celery_app
from worker.context import WorkerContext


def test_submit_run_download_verify_and_provenance(
    api: TestClient,
    headers: dict[str, str],
    model_name: str,
    context: WorkerContext,
    sender: Any,
    tmp_path: Path,
) -> None:
    body = {
        "model": model_name,
        "banks": [{"class_label": name, "samples": 2} for name in ("class_0", "class_1", "class_2")],
        "sampler": {"name": "ddim", "steps": 4, "guidance_scale": 3.0},
        "seed": 3,
    }
    submitted = api.post("/v1/jobs", headers=headers, json=body)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert sender.sent == [(RUN_JOB_TASK, {"job_id": job_id})]
    assert api.get(f"/v1/jobs/{job_id}/database", headers=headers).status_code == 409

    app = create_celery_app(context.settings, context=context)
    for task, payload in sender.sent:  # what a worker consuming the queue does
        app.tasks[task].apply(kwargs=payload)

    job = api.get(f"/v1/jobs/{job_id}", headers=headers).json()
    assert job["status"] == "succeeded" and job["database_ready"] is True
    assert job["progress"] == {
        "banks_total": 3,
        "banks_done": 3,
        "clips_total": 6,
        "clips_done": 6,
        "denoise_step": 4,
        "denoise_steps": 4,
        "phase": None,
        "batch": 0,
        "batches": 0,
        "eta_seconds": None,
    }
    assert job["results"]["clips_kept"] + sum(job["results"]["dropped_counts"].values()) == 6
    assert job["deliveries"] == 1 and set(job["timings"]) == {"generate", "filter", "quality", "export"}
    assert job["results"]["quality"] is None and "names no data build" in job["results"]["quality_reason"]

    response = api.get(f"/v1/jobs/{job_id}/database", headers=headers)
    assert response.status_code == 200
    database = tmp_path / "database.zip"
    database.write_bytes(response.content)
    assert hashlib.sha256(response.content).hexdigest() == response.headers["X-Content-SHA256"]
    verified = CliRunner().invoke(cli_app, ["verify", str(database)])
    assert verified.exit_code == 0, verified.output
    assert f"OK {job['results']['clips_kept']} files verified" in verified.output

    def provenance(clip_id: str) -> dict[str, Any] | None:
        found = api.get(f"/v1/clips/{clip_id}", headers=headers)
        return found.json()["provenance"] if found.status_code == 200 else None

    report = verify_database_zip(database, provenance)
    assert report.ok, report.errors

    clips = api.get(f"/v1/jobs/{job_id}/clips", headers=headers).json()["items"]
    assert len(clips) == 6 and [(c["bank_index"], c["index_in_bank"]) for c in clips][:2] == [(0, 0), (0, 1)]
    kept = next(c for c in clips if c["kept"])
    detail = api.get(f"/v1/clips/{kept['id']}", headers=headers).json()
    record = detail["provenance"]
    downloaded = httpx.get(detail["download_url"]).content
    assert hashlib.sha256(downloaded).hexdigest() == record["clip"]["sha256"] == kept["sha256"]
    with zipfile.ZipFile(database) as archive:
        member = f"clips/bank-{kept['bank_index']:04d}/clip-{kept['index_in_bank']:04d}.npz"
        assert archive.read(member) == downloaded
    assert record["model"]["name"] == model_name and record["seed"] == kept["seed"]
    assert record["conditions"]["class_label"]["name"] == f"class_{kept['bank_index']}"
    assert record["sampler"]["steps"] == 4 and record["filter"]["kept"] is True
    for kind in ("image_prior", "source"):  # class-only banks
        missing = api.get(f"/v1/clips/{kept['id']}/strips/{kind}", headers=headers)
        assert missing.status_code == 404 and missing.json()["detail"][0]["loc"] == ["path", "kind"]
    execution = record["execution"]
    assert execution["device"] == "cpu" and execution["precision"] == "fp32"
    assert execution["torch"] == torch.__version__ and execution["compile_mode"] is None
    with np.load(io.BytesIO(downloaded)) as npz:
        assert str(npz["model_checksum"]) == record["model"]["checksum"]
        assert json.loads(str(npz["execution"])) == execution
