"""Algorithm 1 on planted data: each kind of bad clip is dropped by its stage, with its reason and scores."""

from __future__ import annotations

import numpy as np
import pytest
from filter_planting import (
    FRAMES,
    as_latents,
    band_anchors,
    near_copy,
    noise_clip,
    normal_clip,
    static_clip,
)
from pydantic import ValidationError

from filter.consistency import consistency_band, vae_seq
from filter.core import FilterSettings, run_filter
from filter.similarity import theta_matrix, unit_frames

GOOD_LOSS, WRONG_CLASS_LOSS = 0.2, 5.0


def planted_job(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    """Four banks of 6 clips; one planted bad clip in each. Returns group, loss, latents, {index: reason}."""
    rng = np.random.default_rng(seed)
    clips, group, loss, planted = [], [], [], {}

    def add(g: int, clip: np.ndarray, clip_loss: float = GOOD_LOSS, reason: str | None = None) -> None:
        if reason is not None:
            planted[len(clips)] = reason
        clips.append(clip)
        group.append(g)
        loss.append(clip_loss)

    for i in range(6):
        add(0, normal_clip(rng, i), WRONG_CLASS_LOSS if i == 2 else GOOD_LOSS, "semantic" if i == 2 else None)
    for i in range(5):
        add(1, normal_clip(rng, i))
    add(1, static_clip(rng), reason="static")
    for i in range(5):
        add(2, normal_clip(rng, i))
        if i == 1:
            add(2, noise_clip(rng), reason="inconsistent")
    first_of_group_3 = len(clips)
    for i in range(5):
        add(3, normal_clip(rng, i))
    add(3, clips[first_of_group_3].copy(), reason="duplicate")
    return np.array(group), np.array(loss), as_latents(clips), planted


def reasons_of(result) -> dict[int, str]:
    return {c.index: c.reason for c in result.clips if not c.kept}


def test_each_planted_clip_is_dropped_with_its_reason_and_nothing_else_is():
    group, loss, latents, planted = planted_job()
    result = run_filter(group, loss, latents)
    assert reasons_of(result) == planted
    assert result.kept.sum() == len(loss) - 4
    stages = {c.index: c.stage for c in result.clips if not c.kept}
    inverse = {v: k for k, v in planted.items()}
    assert stages[inverse["semantic"]] == "semantic"
    assert stages[inverse["static"]] == stages[inverse["inconsistent"]] == "inner_sequence"
    assert stages[inverse["duplicate"]] == "inter_sequence"


def test_scores_are_reported_for_every_clip():
    group, loss, latents, planted = planted_job()
    result = run_filter(group, loss, latents)
    clips = result.clips
    assert [c.index for c in clips] == list(range(len(loss)))
    np.testing.assert_allclose([c.loss for c in clips], loss)
    np.testing.assert_allclose(clips[0].group_threshold, (5 * GOOD_LOSS + WRONG_CLASS_LOSS) / 6)
    np.testing.assert_allclose(clips[6].group_threshold, GOOD_LOSS)
    t_low, t_high = result.band
    assert 0.1 < t_low < 0.5 and 0.85 < t_high < 1.0
    static = next(i for i, r in planted.items() if r == "static")
    assert clips[static].vae_seq == pytest.approx(1.0, abs=1e-6) and clips[static].vae_seq > t_high
    noise = next(i for i, r in planted.items() if r == "inconsistent")
    assert clips[noise].vae_seq < t_low
    duplicate = next(i for i, r in planted.items() if r == "duplicate")
    assert clips[duplicate].theta == pytest.approx(1.0, abs=1e-6)
    first_in_group = [int(np.flatnonzero(group == g)[0]) for g in range(4)]
    first_kept_in_group = [int(np.flatnonzero((group == g) & result.kept)[0]) for g in range(4)]
    assert all(clips[i].theta is None for i in first_kept_in_group)
    # clips dropped before stage 3 get no Θ
    assert clips[first_in_group[0] + 2].theta is None and clips[static].theta is None
    kept_thetas = [c.theta for c in clips if c.kept and c.theta is not None]
    assert len(kept_thetas) == len(loss) - 4 - 4 and max(kept_thetas) < 0.5


def test_stage_counts():
    group, loss, latents, _ = planted_job()
    counts = run_filter(group, loss, latents).stage_counts()
    assert counts == {
        "semantic": {"in": 24, "kept": 23, "dropped": 1, "semantic": 1},
        "inner_sequence": {"in": 23, "kept": 21, "dropped": 2, "inconsistent": 1, "static": 1},
        "inter_sequence": {"in": 21, "kept": 20, "dropped": 1, "duplicate": 1},
    }


def interleave_keeping_group_order(group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation of the clips that shuffles groups among each other but keeps each group's order."""
    slots = rng.permutation(len(group))
    perm = np.empty(len(group), dtype=int)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        perm[np.sort(slots[members])] = members
    return perm


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scope", ["group", "job"])
def test_interleaving_groups_changes_no_decision(seed, scope):
    group, loss, latents, _ = planted_job()
    settings = FilterSettings(scope=scope)
    base = run_filter(group, loss, latents, settings)
    perm = interleave_keeping_group_order(group, np.random.default_rng(seed))
    assert not np.array_equal(perm, np.arange(len(perm)))
    moved = run_filter(group[perm], loss[perm], latents[perm], settings)
    assert moved.band == pytest.approx(base.band)
    np.testing.assert_array_equal(moved.reason_code, base.reason_code[perm])
    np.testing.assert_allclose(moved.theta, base.theta[perm], equal_nan=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_order_keeps_the_same_set_when_there_are_no_duplicates(seed):
    group, loss, latents, planted = planted_job()
    duplicate = next(i for i, r in planted.items() if r == "duplicate")
    keep = np.arange(len(group)) != duplicate
    group, loss, latents = group[keep], loss[keep], latents[keep]
    base = run_filter(group, loss, latents)
    perm = np.random.default_rng(seed).permutation(len(group))
    moved = run_filter(group[perm], loss[perm], latents[perm])
    np.testing.assert_array_equal(moved.reason_code, base.reason_code[perm])


def test_greedy_keeps_whichever_copy_comes_first():
    group, loss, latents, planted = planted_job()
    duplicate = next(i for i, r in planted.items() if r == "duplicate")
    original = int(np.flatnonzero(group == 3)[0])
    order = np.arange(len(group))
    order[[original, duplicate]] = order[[duplicate, original]]
    result = run_filter(group[order], loss[order], latents[order])
    assert reasons_of(result)[duplicate] == "duplicate"
    assert result.kept[original]


def job_with_pair(theta: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bank 0: a clip and a near copy of it at Θ = theta among other clips; bank 1 anchors the band."""
    rng = np.random.default_rng(seed)
    clips = [normal_clip(rng, i) for i in range(4)]
    clips.append(near_copy(rng, clips[1], theta))
    clips += band_anchors(rng)
    group = np.array([0] * 5 + [1] * 2)
    return group, np.full(len(clips), GOOD_LOSS), as_latents(clips)


@pytest.mark.parametrize(("theta", "kept"), [(0.979, True), (0.981, False)])
def test_similarity_threshold_098_is_a_cosine(theta, kept):
    group, loss, latents = job_with_pair(theta)
    result = run_filter(group, loss, latents)
    assert result.clips[4].theta == pytest.approx(theta, abs=1e-5)
    assert result.clips[4].kept is kept
    assert result.clips[4].reason == (None if kept else "duplicate")
    assert result.kept[:4].all()


def test_threshold_is_a_setting():
    group, loss, latents = job_with_pair(0.95)
    assert run_filter(group, loss, latents).kept[4]
    assert not run_filter(group, loss, latents, FilterSettings(similarity_threshold=0.9)).kept[4]


def test_job_scope_drops_a_cross_group_copy_that_group_scope_keeps():
    rng = np.random.default_rng(4)
    bank_a = [normal_clip(rng, i) for i in range(3)]
    bank_b = [normal_clip(rng, i) for i in range(2)] + [bank_a[1].copy()]
    clips = bank_a + bank_b + band_anchors(rng)
    group = np.array([7, 7, 7, 3, 3, 3, 9, 9])
    loss = np.full(len(clips), GOOD_LOSS)
    latents = as_latents(clips)
    by_group = run_filter(group, loss, latents, FilterSettings(scope="group"))
    by_job = run_filter(group, loss, latents, FilterSettings(scope="job"))
    assert by_group.kept[:6].all()
    # group 3 is visited before group 7: the copy in group 3 is kept, group 7's clip 1 is the duplicate
    assert reasons_of(by_job) == {1: "duplicate", 6: "inconsistent", 7: "static"}
    assert by_job.clips[1].theta == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("alpha", "kept"), [(1.0, [1, 1, 1, 0]), (0.5, [1, 0, 0, 0]), (2.0, [1, 1, 1, 1])])
def test_alpha_scales_the_group_mean(alpha, kept):
    rng = np.random.default_rng(5)
    loss = np.array([1.0, 2.0, 3.0, 6.0])
    latents = as_latents([normal_clip(rng, 0) for _ in range(4)])
    result = run_filter(np.zeros(4, dtype=int), loss, latents, FilterSettings(alpha=alpha))
    assert [c.group_threshold for c in result.clips] == pytest.approx([alpha * 3.0] * 4)
    stage1_kept = [int(c.reason != "semantic") for c in result.clips]
    assert stage1_kept == kept


def test_equal_losses_in_a_group_are_all_kept():
    rng = np.random.default_rng(6)
    loss = np.full(7, 0.1)
    result = run_filter(np.zeros(7, dtype=int), loss, as_latents([normal_clip(rng, 0) for _ in range(7)]))
    assert not any(c.reason == "semantic" for c in result.clips)


@pytest.mark.parametrize(
    ("values", "band"),
    [
        ([0.4] * 6, (0.4, 0.4)),
        ([0.2, 0.8] * 4, (0.2, 0.8)),
        ([0.1, 0.5, 0.9, 0.5], (0.3, 0.7)),
        ([0.0, 0.4, 0.6, 1.0] * 3, (0.2, 0.8)),
    ],
)
def test_band_with_few_distinct_values(values, band):
    assert consistency_band(np.array(values), k=4, seed=0) == pytest.approx(band)


def test_band_of_k_means_drops_lowest_and_highest_cluster():
    values = np.array([0.05, 0.1, 0.5, 0.52, 0.7, 0.72, 0.95, 0.97])
    assert consistency_band(values, k=4, seed=0) == pytest.approx(((0.075 + 0.51) / 2, (0.71 + 0.96) / 2))


def test_one_distinct_vae_seq_value_keeps_everything():
    rng = np.random.default_rng(7)
    clip = as_latents([normal_clip(rng, 0)])[0]
    latents = np.stack([clip] * 5)
    result = run_filter(np.arange(5), np.ones(5), latents)
    assert result.kept.all() and result.band[0] == result.band[1] == result.vae_seq[0]


def test_vae_seq_of_a_hand_made_latent():
    # frames (3,4), (4,3), (0,5) in a (C=2, h=1, w=1) latent: cosines 24/25 and 15/25
    latents = np.array([[[3, 4], [4, 3], [0, 5]]], dtype=np.float32).reshape(1, 3, 2, 1, 1)
    assert vae_seq(latents) == pytest.approx([(0.96 + 0.6) / 2])
    assert vae_seq(latents.astype(np.float16)) == pytest.approx([0.78], abs=1e-3)


def test_vae_seq_is_the_same_chunked():
    latents = np.random.default_rng(8).standard_normal((10, FRAMES, 2, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(vae_seq(latents, chunk_size=3), vae_seq(latents), rtol=1e-6)


def test_theta_of_hand_made_clips():
    a = np.array([[[1, 0]], [[0, 2]]], dtype=np.float32)  # (clips=1, F=2, D=2)
    b = np.array([[[1, 1]], [[0, -3]]], dtype=np.float32)
    theta = theta_matrix(unit_frames(a.reshape(1, 2, 2)), unit_frames(b.reshape(1, 2, 2)))
    assert theta.item() == pytest.approx((1 / np.sqrt(2) - 1) / 2)


def test_non_finite_latents_are_an_error_naming_the_clip():
    group, loss, latents, _ = planted_job()
    latents[3, 1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"field 'latents' has non-finite values \(first at clip 3\)"):
        run_filter(group, loss, latents)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("similarity_threshold", 98, "less than or equal to 1"),
        ("kmeans_k", 2, "greater than or equal to 3"),
        ("alpha", 0.0, "greater than 0"),
        ("scope", "batch", "'group' or 'job'"),
        ("threshold", 0.5, "Extra inputs are not permitted"),
    ],
)
def test_settings_reject_bad_values_naming_the_field(field, value, message):
    with pytest.raises(ValidationError, match=message) as info:
        FilterSettings(**{field: value})
    assert info.value.errors()[0]["loc"] == (field,)


def test_result_carries_its_settings():
    group, loss, latents, _ = planted_job()
    settings = FilterSettings(alpha=1.5, kmeans_seed=3, scope="job")
    assert run_filter(group, loss, latents, settings).settings == settings


def reference_greedy(latents: np.ndarray, threshold: float) -> tuple[list[bool], list[float]]:
    """Algorithm 1 lines 33-41 written out clip by clip, Θ computed from its definition."""
    frames = latents.reshape(len(latents), latents.shape[1], -1).astype(np.float64)
    kept_rows: list[np.ndarray] = []
    kept, nearest = [], []
    for clip in frames:
        thetas = [
            np.mean([a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(clip, other, strict=True)])
            for other in kept_rows
        ]
        nearest.append(max(thetas) if thetas else np.nan)
        kept.append(not thetas or max(thetas) < threshold)
        if kept[-1]:
            kept_rows.append(clip)
    return kept, nearest


@pytest.mark.parametrize("block_size", [3, 1024])
def test_greedy_dedupe_matches_the_clip_by_clip_reference(block_size):
    from filter.similarity import greedy_dedupe

    rng = np.random.default_rng(9)
    originals = [normal_clip(rng, i) for i in range(6)]
    clips = originals + [near_copy(rng, originals[i % 6], t) for i, t in enumerate([0.99, 0.9, 0.985, 0.97])]
    clips.append(originals[2].copy())
    latents = as_latents(clips)[rng.permutation(len(clips))]
    kept, nearest = greedy_dedupe(latents, np.arange(len(latents)), 0.98, block_size=block_size)
    ref_kept, ref_nearest = reference_greedy(latents, 0.98)
    assert kept.tolist() == ref_kept and 0 < sum(ref_kept) < len(ref_kept)
    np.testing.assert_allclose(nearest, ref_nearest, atol=1e-5)


def test_kmeans_seed_is_bounded_to_what_scikit_learn_takes() -> None:
    assert FilterSettings(kmeans_seed=2**32 - 1).kmeans_seed == 4294967295
    with pytest.raises(ValidationError, match="kmeans_seed"):
        FilterSettings(kmeans_seed=2**32)
