"""The shipped demo model measured on the demo data build, sampled the way the paper does (banks from training
clips, DPM-Solver++ 25): a regression in training or sampling cannot land silently.

Two kinds of floor: the level demo model 0.4.0 reached (with a margin for the few clips sampled here), which
must hold; and issue 15's targets, which 0.4.0 does not reach yet — those are strict xfails, so the day a
retrained model meets one, its test fails until the xfail is removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.build import BuildSettings
from ingest.demo import build_demo
from quality.evaluate import QualityReport, QualitySettings, evaluate_synthesis

REPO = Path(__file__).resolve().parents[2]
SOURCES = REPO / ".cache" / "demo-sources"
MODEL = REPO / "models" / "demo"
CLASSES = ("CT", "MR", "US")

pytestmark = pytest.mark.skipif(
    not (SOURCES / "stamps" / "invesalius-examples").exists(),
    reason="Debian demo sources not fetched (make demo-sources)",
)

# Issue 15's targets (coherence relative to the real clips of the class).
TARGET_COHERENCE_RATIO = 0.85
TARGET_PRECISION = 0.5
TARGET_ACCURACY = 0.9
TARGET_VAE_PSNR_DB = 30.0
NOT_YET = "demo model 0.4.0 does not reach issue 15's target yet (docs/training.md, figures)"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> QualityReport:
    data = tmp_path_factory.mktemp("demo") / "data"
    build_demo(data, SOURCES, BuildSettings(size=64, frames=8))
    settings = QualitySettings(
        banks_per_class=2, clips_per_bank=1, guidance_scale=7.5, classifier_epochs=15, seed=0
    )
    return evaluate_synthesis(MODEL, data, settings)


def test_the_vae_reconstructs_held_out_clips(report: QualityReport) -> None:
    # 0.4.0: 29.5 dB, SSIM 0.91 (CT 32.2, MR 25.8, US 31.6); 0.3.0: 28.1 dB
    assert report.overall["vae_psnr_db"] >= 28.5 and report.overall["vae_ssim"] >= 0.88, report.overall
    for name in CLASSES:
        assert report.per_class[name]["vae_psnr_db"] >= 25.0, (name, report.per_class[name])


def test_generated_clips_hold_together_in_time(report: QualityReport) -> None:
    assert report.overall["coherence_ratio"] >= 0.75, report.overall  # 0.4.0: 0.87; 0.3.0: 0.77; 0.2.0: 0.35


def test_generated_frames_come_near_the_real_ones(report: QualityReport) -> None:
    # 0.4.0: precision 0.27, coverage 0.13; 0.3.0: 0.02 and 0.007; 0.2.0: 0 and 0
    assert report.overall["precision"] >= 0.1 and report.overall["coverage"] >= 0.05, report.overall


def test_a_real_data_classifier_recognises_the_generated_class(report: QualityReport) -> None:
    assert report.overall["accuracy"] >= 0.5, report.overall  # 0.4.0: 0.67 here (0.83 on 12 clips); 0.3.0: 0.67


@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_target_vae_psnr(report: QualityReport) -> None:
    assert all(report.per_class[name]["vae_psnr_db"] >= TARGET_VAE_PSNR_DB for name in CLASSES)


@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_target_coherence_per_class(report: QualityReport) -> None:
    assert all(report.per_class[name]["coherence_ratio"] >= TARGET_COHERENCE_RATIO for name in CLASSES)


@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_target_precision_per_class(report: QualityReport) -> None:
    assert all(report.per_class[name]["precision"] >= TARGET_PRECISION for name in CLASSES)


@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_target_real_data_classifier_accuracy(report: QualityReport) -> None:
    assert report.overall["accuracy"] >= TARGET_ACCURACY


@pytest.mark.xfail(strict=True, reason=NOT_YET)
def test_target_motion_condition_buys_motion_fidelity(report: QualityReport) -> None:
    assert report.overall["motion_epe"] < 0.9 * report.overall["motion_epe_without_motion"]
