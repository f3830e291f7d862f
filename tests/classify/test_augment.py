"""Clip augmentation moves all frames together; mixing methods give consistent soft targets."""

from __future__ import annotations

import pytest
import torch

from classify.augment import AugmentSettings, BatchMixer, augment_clip, build_clip_transform


@pytest.mark.parametrize("method", ["basic", "elastic"])
def test_clip_transform_is_identical_across_frames(method: str) -> None:
    torch.manual_seed(0)
    frame = torch.rand(1, 1, 32, 32)
    clip = frame.repeat(1, 8, 1, 1)
    settings = AugmentSettings.for_method(method, noise_sigma=0.0)
    out = augment_clip(build_clip_transform(settings, 32), clip)
    assert out.shape == (1, 8, 32, 32)
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert not torch.equal(out, clip)


def test_unknown_method_and_mixing_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown method 'autoaugment'"):
        AugmentSettings.for_method("autoaugment")
    with pytest.raises(ValueError, match="augment.mixing"):
        AugmentSettings(mixing="layermix")


def _two_clips() -> tuple[torch.Tensor, torch.Tensor]:
    batch = torch.stack([torch.zeros(1, 8, 16, 16), torch.ones(1, 8, 16, 16)])
    return batch, torch.tensor([0, 1])


@pytest.mark.parametrize("mixing", ["mixup", "cutmix", "videomix", "videomix-temporal"])
def test_targets_match_the_mixed_content(mixing: str) -> None:
    torch.manual_seed(3)
    batch, labels = _two_clips()
    mixed, targets = BatchMixer(mixing, num_classes=2, seed=3)(batch, labels)
    assert mixed.shape == batch.shape
    assert torch.allclose(targets.sum(dim=1), torch.ones(2))
    # Clip 0 is zeros, clip 1 ones: the mean of a mixed clip is the share of clip 1 in it.
    assert mixed[0].mean() == pytest.approx(float(targets[0, 1]), abs=1e-5)
    assert mixed[1].mean() == pytest.approx(float(targets[1, 1]), abs=1e-5)


def test_videomix_spatial_box_is_the_same_on_every_frame() -> None:
    torch.manual_seed(0)
    batch, labels = _two_clips()
    mixed, _ = BatchMixer("videomix", num_classes=2)(batch, labels)
    assert torch.equal(mixed[0], mixed[0, :, :1].expand_as(mixed[0]))


def test_temporal_videomix_swaps_whole_frames() -> None:
    batch, labels = _two_clips()
    mixed, targets = BatchMixer("videomix-temporal", num_classes=2, seed=1)(batch, labels)
    per_frame = mixed[0, 0].mean(dim=(1, 2))
    assert set(per_frame.tolist()) <= {0.0, 1.0}
    assert per_frame.sum() == pytest.approx(8 * float(targets[0, 1]))


def test_single_clip_batch_is_left_alone() -> None:
    batch = torch.rand(1, 1, 8, 16, 16)
    mixed, targets = BatchMixer("mixup", num_classes=3)(batch, torch.tensor([2]))
    assert torch.equal(mixed, batch) and targets.tolist() == [[0.0, 0.0, 1.0]]
