"""End to end: `ctrlgenaug evaluate` on small separable clip sets, and the §4.6 skewed setting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASS_NAMES, separable_clips
from typer.testing import CliRunner

from classify.checkpoint import load_classifier
from classify.data import ClipSet
from classify.evaluation import EvaluationSettings, ImbalanceSettings, run_evaluation
from classify.train import TrainSettings
from cli.main import app

FAST = [
    "--classifier",
    "i3d",
    "--tiny",
    "--epochs",
    "2",
    "--batch-size",
    "4",
    "--lr",
    "1e-3",
    "--bootstrap",
    "100",
]


def test_evaluate_writes_reports_and_baseline_beats_chance(
    real_manifest: Path, synthetic_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "paradigms",
            "--real",
            str(real_manifest),
            "--synthetic",
            str(synthetic_db),
            *FAST,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert list(report["paradigms"]) == ["baseline", "real-finetune", "joint-train"]
    baseline = report["paradigms"]["baseline"]
    assert baseline["accuracy"]["estimate"] > 0.5
    assert baseline["accuracy"]["low"] <= baseline["accuracy"]["estimate"] <= baseline["accuracy"]["high"]
    joint = report["paradigms"]["joint-train"]
    assert joint["stages"][0]["clips"] == 16 + 16  # 12 real over-sampled to the 16 synthetic, plus 16
    assert joint["mcnemar_vs_baseline"]["test"] == "exact-binomial"
    assert set(joint["delta_vs_baseline"]) == {"accuracy", "auroc"}
    finetune = report["paradigms"]["real-finetune"]
    assert [stage["stage"] for stage in finetune["stages"]] == ["pretrain-synthetic", "train"]
    # Mean of the per-clip vae_seq column the filter wrote into manifest.csv.
    assert report["synthesis"]["vae_seq"]["value"] == pytest.approx(
        np.mean([0.9 + 0.001 * i for i in range(16)])
    )
    assert report["synthesis"]["dynamic_smoothness"]["value"] is None
    assert "not the Kinetics I3D" in report["synthesis"]["fvd"]["extractor"]
    markdown = (out / "report.md").read_text()
    assert "| A baseline |" in markdown and "| C joint-train |" in markdown and "McNemar p vs A" in markdown
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model, meta = load_classifier(out / "classifiers" / "baseline")
    assert meta["class_names"] == CLASS_NAMES and meta["paradigm"] == "baseline"


def test_evaluate_refuses_synthetic_paradigms_without_a_database(real_manifest: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["evaluate", "paradigms", "--real", str(real_manifest), *FAST, "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())
    assert "Invalid value for --synthetic: real-finetune and joint-train need a synthetic database" in message


def test_skewed_setting_expands_minority_class_with_synthetic_clips() -> None:
    train_clips, train_labels = separable_clips(16, 0)
    test_clips, test_labels = separable_clips(8, 1)
    synthetic_clips, synthetic_labels = separable_clips(12, 2)
    settings = EvaluationSettings(
        classifier="i3d",
        paradigms=("baseline", "joint-train"),
        tiny=True,
        bootstrap_resamples=50,
        train=TrainSettings(epochs=1, batch_size=4, lr=1e-3),
        imbalance=ImbalanceSettings(classes=(1,), fraction=0.25),
    )
    result = run_evaluation(
        ClipSet(train_clips, train_labels),
        ClipSet(test_clips, test_labels),
        ClipSet(synthetic_clips, synthetic_labels),
        CLASS_NAMES,
        settings,
    )
    data = result.report["data"]
    assert data["real_train"] == [8, 2]
    assert data["synthetic"] == [0, 6]
    assert result.report["paradigms"]["joint-train"]["stages"][0]["class_counts"] == [8, 8]
    per_class = result.report["paradigms"]["baseline"]["per_class"]
    assert [row["class"] for row in per_class] == CLASS_NAMES
    assert {"sensitivity", "specificity", "precision", "f1"} <= set(per_class[1])
