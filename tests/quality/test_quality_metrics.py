"""Quality metrics on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from quality.metrics import (
    clip_distances,
    coverage,
    cross_patient_threshold,
    fit_standardiser,
    frame_coherence,
    frame_features,
    motion_agreement,
    precision_recall,
    psnr,
    ssim,
)


def _textured(seed: int, shape: tuple[int, ...] = (4, 32, 32)) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 216, size=shape).astype(np.uint8)


def test_psnr_of_identical_images_is_infinite_and_of_known_offset_is_exact() -> None:
    images = _textured(0)
    assert np.isinf(psnr(images, images)).all()
    offset = (images.astype(np.int16) + 16).astype(np.uint8)  # MSE = 16² everywhere
    np.testing.assert_allclose(psnr(images, offset), 10 * np.log10(255**2 / 16**2), rtol=1e-5)


def test_ssim_is_one_for_identical_images_and_low_for_independent_noise() -> None:
    images = _textured(1)
    np.testing.assert_allclose(ssim(images, images), 1.0, atol=1e-6)
    assert (ssim(images, _textured(2)) < 0.1).all()


def test_coherence_of_a_static_clip_is_one_and_of_an_inverted_pair_is_minus_one() -> None:
    frame = _textured(3, (32, 32))
    static = np.repeat(frame[None, None], 6, axis=1)
    flicker = np.stack([frame, 255 - frame])[None]
    assert frame_coherence(static) == pytest.approx([1.0])
    assert frame_coherence(flicker) == pytest.approx([-1.0])


def test_coherence_of_constant_frames_counts_equal_pairs_as_one_and_unequal_as_zero() -> None:
    clip = np.stack([np.full((8, 8), v, np.uint8) for v in (10, 10, 20)])[None]
    assert frame_coherence(clip) == pytest.approx([0.5])


def test_coherence_of_independent_noise_is_near_zero() -> None:
    assert abs(float(frame_coherence(_textured(4, (2, 8, 64, 64))).mean())) < 0.05


def test_frame_features_resize_and_scale_to_unit_range() -> None:
    frames = np.full((3, 64, 64), 255, np.uint8)
    features = frame_features(frames, 16)
    assert features.shape == (3, 256)
    np.testing.assert_allclose(features, 1.0, atol=1e-6)


def test_standardiser_floors_constant_dimensions() -> None:
    reference = np.array([[0.0, 1.0], [0.0, 3.0]])
    mean, std = fit_standardiser(reference, floor=0.5)
    np.testing.assert_allclose(mean, [0.0, 2.0])
    np.testing.assert_allclose(std, [0.5, 1.0])


def test_precision_recall_identical_sets_give_one_and_far_sets_give_zero() -> None:
    real = np.random.default_rng(5).normal(size=(40, 8))
    assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0, k=3) == (0.0, 0.0)


def test_precision_recall_of_a_collapsed_generator_is_precise_but_recalls_little() -> None:
    rng = np.random.default_rng(6)
    real = rng.normal(size=(200, 2))
    collapsed = real[0] + rng.normal(scale=1e-3, size=(10, 2))  # every sample near one real mode
    assert precision_recall(real, collapsed, k=3) == (1.0, 1 / 200)


def test_precision_recall_groups_keep_radii_from_other_clips() -> None:
    # Two "clips" of near-identical frames each; without groups every ball shrinks to its own clip.
    real = np.array([[0.0], [0.001], [0.002], [10.0], [10.001], [10.002]])
    generated = np.array([[5.0], [5.0], [5.0], [5.0]])
    assert precision_recall(real, generated, k=2)[0] == 0.0
    groups = np.array([0, 0, 0, 1, 1, 1])
    assert precision_recall(real, generated, k=2, real_groups=groups, generated_groups=np.arange(4))[0] == 1.0


def test_scattered_outliers_get_full_recall_but_no_coverage() -> None:
    rng = np.random.default_rng(7)
    real = rng.normal(size=(50, 4))
    outliers = rng.normal(scale=100.0, size=(20, 4))  # far from the data and from each other
    assert precision_recall(real, outliers, k=3) == (0.0, 1.0)
    assert coverage(real, outliers, k=3) == 0.0
    assert coverage(real, real.copy(), k=3) == 1.0
    line = np.arange(10.0)[:, None]  # every k=1 ball has radius 1
    assert coverage(line, np.array([[0.0]]), k=1) == pytest.approx(2 / 10)


def test_precision_recall_refuses_too_few_neighbours() -> None:
    with pytest.raises(ValueError, match="fewer than 3 neighbours"):
        precision_recall(np.zeros((3, 2)), np.zeros((5, 2)), k=3)


def test_motion_agreement_equal_opposite_and_zero_fields() -> None:
    field = np.zeros((3, 2, 4, 4), np.float32)
    field[1:, 0] = 3.0
    field[1:, 1] = 4.0
    field[0] = 99.0  # frame 0 has no motion and is ignored
    assert motion_agreement(field, field) == pytest.approx((0.0, 1.0))
    reference = field.copy()
    reference[1:] *= -1
    assert motion_agreement(field, reference) == pytest.approx((10.0, -1.0))
    assert motion_agreement(np.zeros_like(field), field) == pytest.approx((5.0, 0.0))


def test_clip_distances_are_rms_in_unit_range() -> None:
    black = np.zeros((1, 2, 4, 4), np.uint8)
    white = np.full((1, 2, 4, 4), 255, np.uint8)
    np.testing.assert_allclose(clip_distances(np.concatenate([black, white]), white), [[1.0], [0.0]])


def test_cross_patient_threshold_ignores_same_patient_pairs() -> None:
    clips = np.stack([np.full((2, 4, 4), v, np.uint8) for v in (0, 0, 51, 255)])
    patients = ["a", "a", "b", "c"]
    # nearest other-patient distances: a->b 0.2, a->b 0.2, b->a 0.2, c->b 0.8
    assert cross_patient_threshold(clips, patients, 0.0) == pytest.approx(0.2)
    assert cross_patient_threshold(clips, patients, 1.0) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="two patients"):
        cross_patient_threshold(clips, ["a"] * 4, 0.0)
