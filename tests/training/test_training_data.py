"""Training data from the manifest: windows, labels (null class), domain tags, motion fields, data order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import ConfigError, DataConfig
from training.data import (
    ClipWindowDataset,
    EpochPermutationSampler,
    FrameDataset,
    clip_text,
    clip_windows,
    load_clip_set,
)


def test_clip_set_labels_and_unlabelled_null_class(clip_set_dir: Path) -> None:
    clip_set = load_clip_set(DataConfig(data_dir=clip_set_dir, resolution=32))
    assert clip_set.class_names == ("early", "late") and len(clip_set.records) == 6
    dataset = FrameDataset(
        clip_set, DataConfig(data_dir=clip_set_dir, resolution=16), clip_windows(clip_set, 8)
    )
    assert len(dataset) == 48
    labels = [dataset[i * 8]["class_label"] for i in range(6)]
    assert labels == [0, 1, 0, 1, 0, 2]  # the unlabelled clip takes the null class row (num_classes)
    item = dataset[9]
    assert item["pixels"].shape == (1, 16, 16) and item["pixels"].dtype == torch.float32
    assert -1.0 <= float(item["pixels"].min()) and float(item["pixels"].max()) <= 1.0
    assert item["prior"].dtype == torch.uint8 and item["prior"].shape == (16, 16)
    assert torch.equal(item["prior"], dataset[8]["prior"])  # every frame of a window shares its first frame


def test_domain_tag_is_prepended_to_the_text(clip_set_dir: Path) -> None:
    clip_set = load_clip_set(DataConfig(data_dir=clip_set_dir))
    labelled, unlabelled = clip_set.records[0], clip_set.records[5]
    tagged = DataConfig(data_dir=clip_set_dir, domain_tag_field="source")
    assert clip_text(labelled, tagged) == "centre-a apical four-chamber echo, early systole"
    assert clip_text(unlabelled, tagged) == "centre-b"
    only_unlabelled = DataConfig(
        data_dir=clip_set_dir, domain_tag_field="source", domain_tag_scope="unlabelled"
    )
    assert clip_text(labelled, only_unlabelled) == "apical four-chamber echo, early systole"
    assert clip_text(unlabelled, only_unlabelled) == "centre-b"
    with pytest.raises(ConfigError, match="data.domain_tag_field: manifest records have no field 'hospital'"):
        clip_text(labelled, DataConfig(data_dir=clip_set_dir, domain_tag_field="hospital"))


def test_windows_and_motion_fields(clip_set_dir: Path) -> None:
    clip_set = load_clip_set(DataConfig(data_dir=clip_set_dir))
    assert clip_windows(clip_set, 4) == [(i, s) for i in range(6) for s in (0, 4)]
    with pytest.raises(ConfigError, match="data.num_frames: no clip has 9 frames"):
        clip_windows(clip_set, 9)
    data = DataConfig(data_dir=clip_set_dir, resolution=16, num_frames=4)
    dataset = ClipWindowDataset(clip_set, data, clip_set_dir / "motion")
    item = dataset[5]  # clip 2, frames 4..7: a cached shift of 2 px along x at 32 px
    assert item["pixels"].shape == (4, 16, 16) and item["motion_field"].shape == (4, 2, 16, 16)
    np.testing.assert_allclose(
        item["motion_field"][:, 0].mean(dim=(1, 2)).numpy(), [0.0, 1.0, 1.0, 1.0], atol=1e-5
    )
    assert float(item["motion_field"][:, 1].abs().max()) == 0.0
    with pytest.raises(ConfigError, match="motion_cache_dir: no motion field for 6 clips"):
        ClipWindowDataset(clip_set, data, clip_set_dir / "nowhere")


def test_epoch_order_is_a_function_of_seed_and_epoch() -> None:
    sampler = EpochPermutationSampler(10, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == list(range(10)) and first != second
    again = EpochPermutationSampler(10, seed=3)
    again.set_epoch(1)
    assert list(again) == second
