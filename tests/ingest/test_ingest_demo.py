"""`ctrlgenaug data demo` on the real packaged images (echo cine from PyPI pydicom-data, MR from
nibabel/pydicom-data; CT and more MR when scripts/fetch_demo_sources.sh has run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from ingest.build import BuildSettings
from ingest.demo import build_demo
from ingest.manifest import load_clip, load_manifest, manifest_checksum

REPO = Path(__file__).resolve().parents[2]
FETCHED = REPO / ".cache" / "demo-sources"


def test_demo_from_pypi_data_only_skips_debian_sources(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app,
        ["data", "demo", "--out", str(out), "--size", "32", "--no-motion", "--allow-missing"],
        env={"CTRLGENAUG_DEMO_SOURCES_DIR": str(tmp_path / "not-fetched")},
    )
    assert result.exit_code == 0, result.output
    assert "skipped Debian invesalius-examples (Cranium.inv3): not found" in result.output
    records = load_manifest(out / "manifest.jsonl")
    echo = [r for r in records if r.class_name == "US"]
    assert len(echo) == 15  # 120 frames → 15 non-overlapping 8-frame clips
    assert [r.split for r in echo] == ["train"] * 12 + ["test"] * 3
    assert {r.split_by for r in echo} == {"time"}
    assert {r.text for r in echo} == {"apical four-chamber echocardiogram, cardiac ultrasound cine"}
    frames = load_clip(out, echo[0])
    assert frames.shape == (8, 32, 32) and frames.dtype == np.uint8
    assert frames.std() > 10 and np.abs(np.diff(frames.astype(int), axis=0)).mean() > 1  # real, moving
    mr = [r for r in records if r.class_name == "MR"]
    assert {r.patient_id for r in mr} == {"mr-pydicom-emri", "mr-nibabel-anatomical", "mr-nibabel-example4d"}
    assert {r.split for r in mr} == {"train", "test"} and {r.split_by for r in mr} == {"patient"}
    sources = json.loads((out / "demo_sources.json").read_text())
    assert len(sources["skipped"]) == 3 and len(sources["used"]) == 4
    assert json.loads((out / "classes.json").read_text()) == {"class_names": ["MR", "US"]}


@pytest.mark.skipif(
    not (FETCHED / "stamps" / "invesalius-examples").exists(),
    reason="Debian demo sources not fetched (scripts/fetch_demo_sources.sh)",
)
def test_full_demo_has_three_balanced_classes_and_keeps_patients_apart(tmp_path: Path) -> None:
    result = build_demo(tmp_path / "demo", FETCHED, BuildSettings(size=32, motion=False))
    assert result.skipped == []
    assert result.report.clips_per_class == {"CT": 13, "MR": 19, "US": 15}
    records = load_manifest(tmp_path / "demo" / "manifest.jsonl")
    ct = [r for r in records if r.class_name == "CT"]
    assert {r.split_by for r in ct} == {"time"} and {r.window for r in ct} == {"ct:-500,1300"}
    sides: dict[str, set[str]] = {}
    for record in records:
        if record.split_by == "patient":
            sides.setdefault(record.patient_id, set()).add(record.split)
    assert len(sides) == 5 and all(len(s) == 1 for s in sides.values())


@pytest.mark.skipif(
    not (FETCHED / "stamps" / "invesalius-examples").exists(),
    reason="Debian demo sources not fetched (scripts/fetch_demo_sources.sh)",
)
def test_a_fresh_demo_build_reproduces_the_shipped_model_lineage(tmp_path: Path) -> None:
    """`ctrlgenaug data demo`'s defaults rebuild exactly the clip set every stage of models/demo trained on."""
    build_demo(tmp_path / "demo", FETCHED, BuildSettings(size=64, frames=8))
    provenance = json.loads((REPO / "models" / "demo" / "training_provenance.json").read_text())
    recorded = {stage: record["data_manifest_checksum"] for stage, record in provenance.items()}
    assert set(recorded) == {"vae", "text", "image", "sequence", "classifier"}
    assert set(recorded.values()) == {manifest_checksum(tmp_path / "demo" / "manifest.jsonl")}
