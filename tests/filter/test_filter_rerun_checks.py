"""`ctrlgenaug filter rerun` with the memorised and off_manifold switches on S.npz files that carry the
clips' scores against real data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from filter_planting import as_latents, band_anchors, normal_clip
from test_filter_cli import app, plain
from typer.testing import CliRunner

from filter.core import FilterSettings, ReferenceSettings, run_filter
from filter.reference import ReferenceScores
from filter.scores import load_scores, save_scores

MEASURED_WITH = {
    "manifold_k": 5,
    "manifold_features": "pixels",
    "spectrum_bands": 12,
    "feature_size": 16,
    "feature_std_floor": 0.1,
    "manifold_radius_quantile": None,
}


def scored_job(tmp_path, reference: bool = True):
    rng = np.random.default_rng(0)
    clips = [normal_clip(rng, i) for i in range(6)] + [normal_clip(rng, 0)] + band_anchors(rng)
    group = np.repeat([0, 1, 2], 3)
    loss = np.full(9, 0.2)
    scores = ReferenceScores(
        real_distance=np.array([0.01, 0.5, 0.5, 0.5, 0.02, 0.5, 0.5, 0.5, 0.5]),
        real_clip=np.array([f"real-{i}" for i in range(9)]),
        manifold_share=np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.25, 1.0, 1.0, 1.0]),
    )
    path = save_scores(
        tmp_path / "S.npz", group, loss, as_latents(clips), scores if reference else None, MEASURED_WITH
    )
    return path, group, loss, as_latents(clips), scores


def test_saved_reference_scores_round_trip(tmp_path):
    path, *_, scores = scored_job(tmp_path)
    loaded = load_scores(path)
    assert loaded.measured_with == MEASURED_WITH
    assert loaded.reference is not None
    assert loaded.reference.real_clip.tolist() == scores.real_clip.tolist()
    np.testing.assert_array_equal(loaded.reference.manifold_share, scores.manifold_share)


def test_rerun_applies_both_checks_with_the_measured_feature_space(tmp_path):
    path, group, loss, latents, scores = scored_job(tmp_path)
    out = tmp_path / "R.json"
    args = ["filter", "rerun", "--scores", str(path), "--out", str(out)]
    run = CliRunner().invoke(app(), [*args, "--memorised", "--memorised-threshold", "0.05", "--off-manifold"])
    assert run.exit_code == 0, run.output
    written = json.loads(out.read_text())
    assert written["checks"]["manifold_k"] == 5 and written["checks"]["feature_size"] == 16
    reasons = {c["index"]: c["reason"] for c in written["clips"]}
    assert reasons[0] == reasons[4] == "memorised"
    assert written["clips"][0]["real_clip"] == "real-0" and written["clips"][0]["real_distance"] == 0.01
    checks = ReferenceSettings(memorised=True, memorised_threshold=0.05, off_manifold=True, **MEASURED_WITH)
    expected = run_filter(group, loss, latents, FilterSettings(), checks, scores).to_json()
    assert written == json.loads(json.dumps(expected))
    assert "memorised: 9 in, 7 kept, 2 dropped" in run.output


def test_rerun_without_switches_is_algorithm_1(tmp_path):
    path, group, loss, latents, _ = scored_job(tmp_path)
    out = tmp_path / "R.json"
    run = CliRunner().invoke(app(), ["filter", "rerun", "--scores", str(path), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert json.loads(out.read_text()) == json.loads(json.dumps(run_filter(group, loss, latents).to_json()))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--memorised"], "--memorised needs --memorised-threshold"),
        (["--memorised", "--memorised-threshold", "-0.1"], "--memorised-threshold: Input should be greater"),
        (["--off-manifold", "--manifold-min-share", "0"], "--manifold-min-share: Input should be greater"),
    ],
)
def test_rerun_refuses_bad_check_settings(tmp_path, extra, message):
    path, *_ = scored_job(tmp_path)
    args = ["filter", "rerun", "--scores", str(path), "--out", str(tmp_path / "R.json"), *extra]
    run = CliRunner().invoke(app(), args)
    assert run.exit_code == 2 and message in plain(run.output), plain(run.output)


def test_rerun_checks_need_scores_against_real_data(tmp_path):
    path, *_ = scored_job(tmp_path, reference=False)
    args = ["filter", "rerun", "--scores", str(path), "--out", str(tmp_path / "R.json"), "--off-manifold"]
    run = CliRunner().invoke(app(), args)
    assert run.exit_code == 2 and "need scores measured against real data" in plain(run.output)
