"""On a CUDA device: full-size classifiers train, and an evaluation runs end to end on the GPU."""

from __future__ import annotations

import pytest
import torch
from conftest import CLASS_NAMES, separable_clips

from classify.data import ClipSet
from classify.evaluation import EvaluationSettings, run_evaluation
from classify.registry import build_classifier, list_classifiers
from classify.train import TrainSettings

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("name", list_classifiers())
def test_full_size_forward_backward_on_cuda(name: str) -> None:
    torch.manual_seed(0)
    model = build_classifier(name, num_classes=3, frames=8, size=64).cuda()
    logits = model(torch.randn(2, 1, 8, 64, 64, device="cuda"))
    assert logits.shape == (2, 3) and logits.device.type == "cuda"
    logits.logsumexp(dim=1).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_full_size_i3d_evaluation_on_cuda_beats_chance() -> None:
    real_train = ClipSet(*separable_clips(32, 0, size=64))
    real_test = ClipSet(*separable_clips(16, 1, size=64))
    synthetic = ClipSet(*separable_clips(48, 2, size=64))
    settings = EvaluationSettings(
        classifier="i3d",
        train=TrainSettings(epochs=4, batch_size=8, lr=1e-4, device="cuda"),
        bootstrap_resamples=200,
    )
    report = run_evaluation(real_train, real_test, synthetic, CLASS_NAMES, settings).report
    for name in ("baseline", "real-finetune", "joint-train"):
        assert report["paradigms"][name]["accuracy"]["estimate"] > 0.5
    assert report["paradigms"]["joint-train"]["stages"][0]["clips"] == 96
