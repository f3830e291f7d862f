"""Synthesis metrics of §4.2: VAE-Seq aggregation, Dynamic Smoothness, Fréchet distance / FVD."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from classify.registry import build_classifier
from classify.synthesis_metrics import (
    TorchScriptInterpolator,
    classifier_features,
    dataset_vae_seq,
    dynamic_smoothness,
    frechet_distance,
    i3d_torchscript_features,
    vae_seq_per_clip,
)
from classify.synthesis_report import FeatureExtractor, manifest_vae_seq, synthesis_metrics


class LinearBlend(nn.Module):
    def forward(self, frame0: torch.Tensor, frame1: torch.Tensor) -> torch.Tensor:
        return (frame0 + frame1) / 2


class FakeI3D(nn.Module):
    def forward(
        self, video: torch.Tensor, rescale: bool, resize: bool, return_features: bool
    ) -> torch.Tensor:
        return torch.stack(
            [
                video.amin(dim=(1, 2, 3, 4)),
                video.amax(dim=(1, 2, 3, 4)),
                torch.full(video.shape[:1], float(video.shape[1])),
            ],
            dim=1,
        )


def script(module: nn.Module, path: Path) -> Path:
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_vae_seq_per_clip_and_dataset_mean() -> None:
    static = np.ones((1, 4, 2, 2, 2))
    flipping = np.stack([np.ones((2, 2, 2)) * (-1) ** t for t in range(4)])[None]
    values = vae_seq_per_clip(np.concatenate([static, flipping]))
    assert values.tolist() == pytest.approx([1.0, -1.0])
    assert dataset_vae_seq(np.concatenate([static, flipping]))["mean"] == pytest.approx(0.0)
    assert dataset_vae_seq(np.array([0.9, 0.8]))["mean"] == pytest.approx(0.85)
    assert manifest_vae_seq([{"vae_seq": "0.5"}, {"vae_seq": ""}]) is None


def test_dynamic_smoothness_with_a_linear_interpolator(tmp_path: Path) -> None:
    interpolator = TorchScriptInterpolator(script(LinearBlend(), tmp_path / "blend.pt"), channels=3)
    ramp = (np.arange(9, dtype=np.uint8) * 20)[None, :, None, None].repeat(4, 2).repeat(4, 3)
    assert dynamic_smoothness(ramp, interpolator) == pytest.approx(1.0)
    flicker = ((np.arange(8) % 2) * 200).astype(np.uint8)[None, :, None, None].repeat(4, 2).repeat(4, 3)
    assert dynamic_smoothness(flicker, interpolator) == pytest.approx(1 - 200 / 255, abs=1e-4)
    with pytest.raises(FileNotFoundError, match="interpolator"):
        TorchScriptInterpolator(tmp_path / "none.pt")


def test_frechet_distance_of_shifted_features_is_the_squared_shift() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0])
    assert frechet_distance(features, features + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    with pytest.raises(ValueError, match="frechet_distance"):
        frechet_distance(features, features[:, :3])


def test_classifier_features_are_the_head_inputs() -> None:
    torch.manual_seed(0)
    model = build_classifier("swin3d_t", 2, tiny=True)
    clips = np.random.default_rng(0).integers(0, 255, (3, 8, 32, 32), dtype=np.uint8)
    features = classifier_features(model, clips)
    assert features.shape == (3, model.head.in_features)
    assert np.isfinite(features).all()


def test_i3d_torchscript_features_get_minus_one_to_one_rgb(tmp_path: Path) -> None:
    path = script(FakeI3D(), tmp_path / "i3d.pt")
    clips = np.stack([np.zeros((8, 4, 4), np.uint8), np.full((8, 4, 4), 255, np.uint8)])
    features = i3d_torchscript_features(path, clips, size=8)
    assert features.tolist() == [[-1.0, -1.0, 3.0], [1.0, 1.0, 3.0]]


def test_report_section_says_not_computed_without_models(tmp_path: Path) -> None:
    clips = np.random.default_rng(0).integers(0, 255, (4, 8, 16, 16), dtype=np.uint8)
    section = synthesis_metrics(clips, clips, None, None, None)
    assert {name: entry["value"] for name, entry in section.items()} == {
        "fvd": None,
        "vae_seq": None,
        "dynamic_smoothness": None,
    }
    extractor = FeatureExtractor(label="fake I3D", i3d_path=script(FakeI3D(), tmp_path / "i3d.pt"))
    section = synthesis_metrics(clips, clips, extractor, np.array([0.5, 0.7]), None)
    assert section["fvd"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert section["fvd"]["extractor"] == "fake I3D"
    assert section["vae_seq"]["value"] == pytest.approx(0.6)
