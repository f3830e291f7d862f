"""`evaluate_synthesis` and `ctrlgenaug evaluate synthesis` on a tiny model and a small data build."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from generator.model_info import model_checksum
from generator.pipeline import build_tiny_pipeline
from ingest.manifest import ClipRecord, write_manifest
from ingest.npz import sha256_file
from quality.card import QUALITY_CARD, read_quality_card, write_quality_card
from quality.evaluate import QualityReport, QualitySettings, evaluate_synthesis

CLASSES = ("CT", "MR", "US")
FRAMES, SIZE = 8, 32
FAST = QualitySettings(steps=2, classifier_epochs=1, fvd_extractor="real-classifier")


def _static_clip(class_index: int, variant: int) -> np.ndarray:
    """A still clip (coherence exactly 1) whose texture differs per class and per clip."""
    rng = np.random.default_rng(100 * class_index + variant)
    frame = rng.integers(0, 256, size=(SIZE, SIZE)).astype(np.uint8)
    return np.repeat(frame[None], FRAMES, axis=0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per class 3 training clips and 2 test clips, each of its own patient, with cached motion fields."""
    root = tmp_path_factory.mktemp("build")
    (root / "clips").mkdir()
    (root / "motion").mkdir()
    records = []
    for class_index, name in enumerate(CLASSES):
        for variant in range(5):
            clip_id = f"{name}-{variant}"
            path = root / "clips" / f"{clip_id}.npz"
            np.savez(path, frames=_static_clip(class_index, variant))
            field = np.zeros((FRAMES, 2, SIZE, SIZE), np.float32)
            field[1:, 0] = 1.0 + variant
            np.savez(root / "motion" / f"{clip_id}.npz", field=field)
            records.append(
                ClipRecord(
                    clip_id=clip_id,
                    path=f"clips/{clip_id}.npz",
                    sha256=sha256_file(path),
                    class_name=name,
                    class_index=class_index,
                    text=f"a {name} sequence",
                    patient_id=f"{name}-patient-{variant}",
                    split="train" if variant < 3 else "test",
                    source="synthetic",
                    frames=FRAMES,
                    height=SIZE,
                    width=SIZE,
                    modality=name,
                )
            )
    write_manifest(root / "manifest.jsonl", records)
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pipeline = build_tiny_pipeline(num_classes=len(CLASSES), size=SIZE, num_frames=FRAMES)
    pipeline.info = replace(pipeline.info, class_names=CLASSES)
    root = tmp_path_factory.mktemp("model")
    pipeline.save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def report(model_dir: Path, data_dir: Path) -> QualityReport:
    return evaluate_synthesis(model_dir, data_dir, FAST)


def test_every_class_and_overall_carry_every_figure(report: QualityReport) -> None:
    expected = {
        "vae_psnr_db",
        "vae_ssim",
        "real_test_accuracy",
        "coherence_generated",
        "coherence_real",
        "coherence_ratio",
        "vae_seq_generated",
        "vae_seq_real",
        "precision",
        "recall",
        "coverage",
        "accuracy",
        "prior_ssim",
        "motion_epe",
        "motion_cosine",
        "motion_epe_without_motion",
        "motion_cosine_without_motion",
        "memorised_share",
        "nearest_training_distance",
        "generated_clips",
    }
    assert set(report.per_class) == set(CLASSES)
    for figures in report.per_class.values():
        assert set(figures) == expected
        assert all(isinstance(value, float) for value in figures.values())
    assert set(report.overall) == expected | {"fvd", "memorisation_threshold"}
    assert isinstance(report.overall["fvd"], float)


def test_real_figures_are_those_of_the_constructed_build(report: QualityReport) -> None:
    for name in CLASSES:
        figures = report.per_class[name]
        assert figures["coherence_real"] == pytest.approx(1.0)  # still clips
        assert figures["coherence_ratio"] == pytest.approx(figures["coherence_generated"])
        assert figures["generated_clips"] == 2.0  # 2 banks x 1 clip
    assert report.overall["generated_clips"] == 6.0
    assert report.data["train_clips"] == 9 and report.data["test_clips"] == 6
    # banks come from training clips only, spread over each class
    assert report.data["bank_sources"] == ["CT-0", "CT-2", "MR-0", "MR-2", "US-0", "US-2"]


def test_an_untrained_model_is_reported_as_bad(report: QualityReport) -> None:
    overall = report.overall
    assert overall["coherence_generated"] < 0.9
    assert overall["vae_psnr_db"] < 20.0
    assert overall["prior_ssim"] < 0.5
    assert 0.0 <= overall["memorised_share"] <= 1.0
    for name in ("precision", "recall", "coverage"):
        assert 0.0 <= overall[name] <= 1.0
    assert overall["motion_epe"] > 0.0


def test_definitions_state_the_feature_space_and_the_distance(report: QualityReport) -> None:
    assert "32x32" in report.definitions["feature_space"]
    assert "k = 3" in report.definitions["feature_space"]
    assert "another patient" in report.definitions["memorisation_distance"]
    assert "trained here on the 9 real training clips" in report.definitions["classifier"]


def test_quality_card_round_trips_and_changes_the_model_checksum(
    report: QualityReport, model_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    before = model_checksum(copy)
    assert read_quality_card(copy) is None
    assert write_quality_card(copy, report) == copy / QUALITY_CARD
    assert read_quality_card(copy) == json.loads(json.dumps(report.to_json()))
    assert model_checksum(copy) != before


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(ValueError, match="banks_per_class"):
        QualitySettings(banks_per_class=0)
    with pytest.raises(ValueError, match="sampler"):
        QualitySettings(sampler="euler")
    with pytest.raises(ValueError, match="memorisation_quantile"):
        QualitySettings(memorisation_quantile=1.5)


def test_cli_writes_the_report_and_the_card(model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    evaluated = tmp_path / "model"
    shutil.copytree(model_dir, evaluated)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "synthesis",
            "--model",
            str(evaluated),
            "--data",
            str(data_dir),
            "--banks-per-class",
            "1",
            "--steps",
            "2",
            "--no-motion-ablation",
            "--out",
            str(out),
            "--write-card",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "overall" in result.output
    saved = json.loads(out.read_text())
    assert saved["overall"]["generated_clips"] == 3.0
    assert saved["overall"]["motion_epe_without_motion"] is None
    # one generated clip per class: its frames have no neighbours outside their own clip
    assert all(saved["per_class"][name]["precision"] is None for name in CLASSES)
    assert isinstance(saved["overall"]["precision"], float)
    assert read_quality_card(evaluated) == saved
    assert not (model_dir / QUALITY_CARD).exists()


def test_cli_refuses_a_data_build_of_other_classes(model_dir: Path, tmp_path: Path, data_dir: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    lines = (data_dir / "manifest.jsonl").read_text().replace('"class_name":"CT"', '"class_name":"XR"')
    (other / "manifest.jsonl").write_text(lines)
    result = CliRunner().invoke(
        app, ["evaluate", "synthesis", "--model", str(model_dir), "--data", str(other), "--steps", "2"]
    )
    assert result.exit_code == 2
    assert "XR" in result.output
