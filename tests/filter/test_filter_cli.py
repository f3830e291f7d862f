"""`ctrlgenaug filter rerun`: re-filters saved scores and writes the result JSON schema exactly."""

from __future__ import annotations

import json

import numpy as np
import typer
from filter_planting import as_latents, band_anchors, normal_clip
from typer.testing import CliRunner

from cli.filter import register
from filter.core import FilterSettings, run_filter
from filter.scores import save_scores

CLIP_KEYS = {"index", "kept", "reason", "loss", "group_threshold", "vae_seq", "theta"}


def plain(output: str) -> str:
    """CLI output without the boxes and line wrapping of rich."""
    return " ".join(output.translate({ord(ch): " " for ch in "│╭╮╰╯─"}).split())


def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


def saved_job(tmp_path):
    rng = np.random.default_rng(0)
    clips = [normal_clip(rng, i) for i in range(6)] + [normal_clip(rng, 0)] + band_anchors(rng)
    clips[3] = clips[1].copy()
    group = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2])
    loss = np.array([0.2, 0.2, 0.9, 0.2, 0.3, 0.3, 0.3, 0.1, 0.1])
    path = save_scores(tmp_path / "S.npz", group, loss, as_latents(clips))
    return path, group, loss, as_latents(clips)


def test_rerun_writes_the_exact_schema(tmp_path):
    scores, group, loss, latents = saved_job(tmp_path)
    out = tmp_path / "out" / "R.json"
    args = ["filter", "rerun", "--scores", str(scores), "--out", str(out), "--alpha", "1.2"]
    args += ["--kmeans-k", "4", "--kmeans-seed", "5", "--similarity-threshold", "0.97", "--scope", "job"]
    run = CliRunner().invoke(app(), args)
    assert run.exit_code == 0, run.output
    written = json.loads(out.read_text())
    assert set(written) == {"band", "settings", "clips"}
    assert written["settings"] == {
        "alpha": 1.2,
        "kmeans_k": 4,
        "kmeans_seed": 5,
        "similarity_threshold": 0.97,
        "scope": "job",
    }
    assert len(written["band"]) == 2 and written["band"][0] <= written["band"][1]
    assert [c["index"] for c in written["clips"]] == list(range(9))
    assert all(set(c) == CLIP_KEYS for c in written["clips"])
    assert all((c["reason"] is None) == c["kept"] for c in written["clips"])
    assert written["clips"][2]["reason"] == "semantic" and written["clips"][3]["reason"] == "duplicate"
    assert written["clips"][0]["theta"] is None and written["clips"][3]["theta"] > 0.999
    expected = run_filter(group, loss, latents, FilterSettings(**written["settings"])).to_json()
    assert written == json.loads(json.dumps(expected))
    assert "semantic: 9 in, 8 kept, 1 dropped" in run.output


def test_rerun_uses_default_settings(tmp_path):
    scores, *_ = saved_job(tmp_path)
    out = tmp_path / "R.json"
    run = CliRunner().invoke(app(), ["filter", "rerun", "--scores", str(scores), "--out", str(out)])
    assert run.exit_code == 0, run.output
    assert json.loads(out.read_text())["settings"] == FilterSettings().model_dump()


def test_rerun_rejects_a_threshold_on_the_wrong_scale(tmp_path):
    scores, *_ = saved_job(tmp_path)
    out = tmp_path / "R.json"
    args = ["filter", "rerun", "--scores", str(scores), "--out", str(out), "--similarity-threshold", "98"]
    run = CliRunner().invoke(app(), args)
    assert run.exit_code == 2
    assert "--similarity-threshold: Input should be less than or equal to 1" in plain(run.output)
    assert not out.exists()


def test_rerun_names_the_bad_field_of_the_scores_file(tmp_path):
    np.savez(tmp_path / "S.npz", group=np.zeros(3, dtype=int), loss=np.zeros(3))
    run = CliRunner().invoke(
        app(), ["filter", "rerun", "--scores", str(tmp_path / "S.npz"), "--out", str(tmp_path / "R.json")]
    )
    assert run.exit_code == 2
    assert "Invalid value for --scores" in plain(run.output)
    assert "missing field(s) 'latents'" in plain(run.output)
