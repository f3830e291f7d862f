"""Training sets of the three paradigms (§4.1) and the class-skewed setting (§4.6)."""

from __future__ import annotations

import numpy as np
import pytest

from classify.augment import AugmentSettings
from classify.data import ClipSet
from classify.paradigms import (
    ParadigmInputs,
    check_paradigms,
    expansion_indices,
    oversample_indices,
    subsample_classes,
    training_sets,
)
from classify.preprocess import ClipNormalization
from classify.train import TrainSettings


def clip_set(labels: list[int]) -> ClipSet:
    return ClipSet(np.zeros((len(labels), 2, 4, 4), np.uint8), np.asarray(labels))


def inputs(real: ClipSet, synthetic: ClipSet | None, oversample: bool = True) -> ParadigmInputs:
    settings = TrainSettings(epochs=1)
    return ParadigmInputs(
        real,
        synthetic,
        2,
        4,
        ClipNormalization(),
        AugmentSettings(),
        settings,
        settings,
        oversample_real=oversample,
    )


@pytest.mark.parametrize(("count", "target"), [(7, 30), (5, 5), (4, 9), (10, 3)])
def test_oversampling_gives_the_stated_counts(count: int, target: int) -> None:
    indices = oversample_indices(count, target, np.random.default_rng(0))
    assert indices.size == max(count, target)
    occurrences = np.bincount(indices, minlength=count)
    assert occurrences.min() >= max(1, target // count)
    assert occurrences.max() - occurrences.min() <= 1


def test_joint_train_oversamples_real_to_the_synthetic_count() -> None:
    real, synthetic = clip_set([0, 1, 1, 0, 1]), clip_set([0, 1] * 11)
    (stage,) = training_sets("joint-train", inputs(real, synthetic))
    oversampled, synth = stage
    assert len(oversampled) == 22 and synth is synthetic
    dark, bright = oversampled.class_counts(2)
    # Every real clip 4 times (8 + 12), the 2 remaining draws distinct clips.
    assert dark + bright == 22 and 8 <= dark <= 10 and 12 <= bright <= 14


def test_real_finetune_pretrains_on_synthetic_then_real() -> None:
    real, synthetic = clip_set([0, 1]), clip_set([0, 1, 1])
    assert training_sets("real-finetune", inputs(real, synthetic)) == [[synthetic], [real]]
    assert training_sets("baseline", inputs(real, None)) == [[real]]
    (stage,) = training_sets("joint-train", inputs(real, synthetic, oversample=False))
    assert stage == [real, synthetic]


def test_paradigms_needing_synthetic_refuse_without_it() -> None:
    with pytest.raises(ValueError, match="needs synthetic clips"):
        training_sets("joint-train", inputs(clip_set([0, 1]), None))
    with pytest.raises(ValueError, match="unknown"):
        check_paradigms(["baseline", "self-train"])


def test_skewing_keeps_a_fraction_of_chosen_classes() -> None:
    labels = np.array([0] * 20 + [1] * 12 + [2] * 8)
    kept = subsample_classes(labels, [1, 2], 0.25, np.random.default_rng(0))
    assert np.bincount(labels[kept]).tolist() == [20, 3, 2]
    with pytest.raises(ValueError, match="fraction"):
        subsample_classes(labels, [1], 0.0, np.random.default_rng(0))


def test_expansion_fills_chosen_classes_up_to_the_majority() -> None:
    real = np.array([0] * 20 + [1] * 3 + [2] * 2)
    synthetic = np.array([0] * 30 + [1] * 30 + [2] * 10)
    chosen, shortfall = expansion_indices(real, synthetic, [1, 2], np.random.default_rng(0))
    assert np.bincount(synthetic[chosen], minlength=3).tolist() == [0, 17, 10]
    assert shortfall == {1: 0, 2: 8}
