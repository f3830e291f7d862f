"""The synthesis-metrics section of an evaluation report (§4.2): FVD, VAE-Seq, Dynamic Smoothness.
A metric whose model or input is not given is reported as not computed, never estimated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from classify.preprocess import ClipNormalization
from classify.synthesis_metrics import (
    TorchScriptInterpolator,
    classifier_features,
    dataset_vae_seq,
    dynamic_smoothness,
    frechet_distance,
    i3d_torchscript_features,
)


@dataclass(frozen=True)
class FeatureExtractor:
    """Either a Kinetics I3D TorchScript file (`i3d_path`) or a classifier `model` with its
    input settings; `label` names it in the report."""

    label: str
    i3d_path: Path | None = None
    model: nn.Module | None = None
    normalization: ClipNormalization = ClipNormalization()
    size: int | None = None

    def features(self, clips: np.ndarray, device: str = "cpu") -> np.ndarray:
        if self.i3d_path is not None:
            return i3d_torchscript_features(self.i3d_path, clips, device=device)
        if self.model is None:
            raise ValueError("feature extractor: give `i3d_path` or `model`")
        return classifier_features(self.model, clips, self.normalization, self.size, device=device)


def _not_computed(note: str) -> dict[str, Any]:
    return {"value": None, "note": note}


def manifest_vae_seq(rows: list[dict[str, str]]) -> np.ndarray | None:
    """Per-clip VAE-Seq values recorded by the filter in the database manifest, if every row has one."""
    values = [(row.get("vae_seq") or "").strip() for row in rows]
    if not values or not all(values):
        return None
    return np.asarray([float(value) for value in values])


def synthesis_metrics(
    real_clips: np.ndarray,
    synthetic_clips: np.ndarray,
    extractor: FeatureExtractor | None,
    vae_seq_source: np.ndarray | None,
    interpolator: TorchScriptInterpolator | None,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    if extractor is None:
        result["fvd"] = _not_computed("no feature extractor given")
    else:
        distance = frechet_distance(
            extractor.features(real_clips, device), extractor.features(synthetic_clips, device)
        )
        result["fvd"] = {
            "value": distance,
            "extractor": extractor.label,
            "note": f"features: {extractor.label}",
        }
    if vae_seq_source is None:
        result["vae_seq"] = _not_computed("no per-clip VAE-Seq in the manifest and no latents given")
    else:
        summary = dataset_vae_seq(vae_seq_source)
        result["vae_seq"] = {
            "value": summary["mean"],
            **summary,
            "note": f"mean over {summary['clips']} clips",
        }
    if interpolator is None:
        result["dynamic_smoothness"] = _not_computed("no frame-interpolation model given")
    else:
        result["dynamic_smoothness"] = {
            "value": dynamic_smoothness(synthetic_clips, interpolator),
            "note": "1 − MAE/255 of interpolated odd frames",
        }
    return result
