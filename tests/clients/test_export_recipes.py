"""docs/exports.md's recipes, run as written against a live service's export: the plain PyTorch Dataset on the
NPZ database (with folds by source patient) and the MONAI Dataset on the NIfTI one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from live_service import LiveService

from client import Client

DOC = Path(__file__).resolve().parents[2] / "docs" / "exports.md"
PLACEHOLDER = "data/db/ctrlgenaug-JOB"


def recipe(heading: str) -> str:
    section = DOC.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"^```python\n(.*?)^```$", section, re.S | re.M)
    return code


def run_recipe(heading: str, folder: Path, job_id: str) -> dict[str, Any]:
    """Run the recipe on the job's database downloaded into `folder` (its path put for the placeholder)."""
    code = recipe(heading)
    assert PLACEHOLDER in code
    namespace: dict[str, Any] = {}
    exec(
        compile(code.replace(PLACEHOLDER, str(folder / f"ctrlgenaug-{job_id}")), str(DOC), "exec"), namespace
    )
    return namespace


def test_plain_torch_dataset_recipe(live: LiveService, finished_job: str, tmp_path: Path) -> None:
    with Client(live.url, live.key) as client:
        client.download_database(finished_job, tmp_path, progress=False)
        kept = client.job(finished_job).results.clips_kept
    namespace = run_recipe("A plain PyTorch Dataset (NPZ)", tmp_path, finished_job)
    frames, labels = namespace["frames"], namespace["labels"]
    assert len(namespace["clips"]) == kept
    assert frames.dtype == torch.float32 and tuple(frames.shape[1:]) == (1, 8, 32, 32)
    assert 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert set(labels.tolist()) <= {0, 1, 2}
    assert len(namespace["folds"]) == 2
    patients = {row["source_patient_id"] for row in namespace["clips"].rows}
    assert patients <= set(live.patients.values())


def test_monai_dataset_recipe(live: LiveService, finished_job: str, tmp_path: Path) -> None:
    pytest.importorskip("monai")
    with Client(live.url, live.key) as client:
        client.download_database(finished_job, tmp_path, clip_format="nifti", progress=False)
    namespace = run_recipe("A MONAI Dataset (NIfTI)", tmp_path, finished_job)
    batch = namespace["batch"]
    assert tuple(batch["image"].shape[1:]) == (1, 32, 32, 8)
    assert float(batch["image"].max()) <= 1.0
    assert set(batch["label"].tolist()) <= {0, 1, 2}
    assert set(batch["patient"]) <= set(live.patients.values())
