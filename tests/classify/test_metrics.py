"""Metrics (§4.3) against hand-computed values and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from classify.metrics import (
    accuracy,
    auroc,
    bootstrap_ci,
    mcnemar,
    mcnemar_from_counts,
    per_class_metrics,
    roc_curves,
)

Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 1, 1, 2, 0, 2])


def one_hot_scores(pred: np.ndarray, num_classes: int = 3) -> np.ndarray:
    scores = np.full((pred.size, num_classes), 0.1)
    scores[np.arange(pred.size), pred] = 0.8
    return scores


def test_accuracy_counts_argmax_hits() -> None:
    assert accuracy(Y_TRUE, one_hot_scores(Y_PRED)) == pytest.approx(6 / 8)


def test_binary_auroc_matches_hand_value() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert auroc(np.array([0, 0, 1, 1]), np.stack([1 - scores, scores], axis=1)) == pytest.approx(0.75)


def test_macro_ovr_auroc_matches_hand_value_and_sklearn() -> None:
    scores = one_hot_scores(Y_PRED)
    # One-vs-rest AUCs counted by hand (ties count one half): 11/15, 11/12, 12.5/15.
    expected = (11 / 15 + 11 / 12 + 12.5 / 15) / 3
    assert auroc(Y_TRUE, scores) == pytest.approx(expected)
    assert auroc(Y_TRUE, scores) == pytest.approx(
        roc_auc_score(Y_TRUE, scores, multi_class="ovr", average="macro")
    )


def test_auroc_refuses_a_missing_class() -> None:
    with pytest.raises(ValueError, match="every one of the 3 classes"):
        auroc(np.array([0, 0, 1]), one_hot_scores(np.array([0, 1, 1])))


def test_per_class_metrics_match_hand_counts() -> None:
    metrics = per_class_metrics(Y_TRUE, one_hot_scores(Y_PRED))
    expected = [  # sensitivity, specificity, precision, F1, support
        (2 / 3, 4 / 5, 2 / 3, 2 / 3, 3),
        (1.0, 5 / 6, 2 / 3, 0.8, 2),
        (2 / 3, 1.0, 1.0, 0.8, 3),
    ]
    for got, (sens, spec, prec, f1, support) in zip(metrics, expected, strict=True):
        assert (got.sensitivity, got.specificity, got.precision, got.f1) == pytest.approx(
            (sens, spec, prec, f1)
        )
        assert got.support == support


def test_scores_are_validated_with_field_names() -> None:
    with pytest.raises(ValueError, match="y_score"):
        accuracy(Y_TRUE, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="y_true: class indices"):
        accuracy(np.array([0, 5]), np.zeros((2, 3)))


def test_roc_curves_one_per_class_and_none_for_absent_class() -> None:
    curves = roc_curves(np.array([0, 0, 1, 1]), one_hot_scores(np.array([0, 1, 1, 1])))
    assert curves[2] is None
    fpr, tpr = curves[1]
    assert fpr[0] == 0 and tpr[-1] == 1.0 and fpr[-1] == 1.0


def _noisy_binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    positive = np.clip(0.5 + 0.1 * (y - 0.5) * 2 + rng.normal(0, 0.3, n), 0, 1)
    return y, np.stack([1 - positive, positive], axis=1)


def test_bootstrap_ci_covers_estimate_and_narrows_with_more_samples() -> None:
    y_small, s_small = _noisy_binary(40, 0)
    # Ten copies of the same test set: same estimate, about √10 times narrower interval.
    y_large, s_large = np.tile(y_small, 10), np.tile(s_small, (10, 1))
    for metric in (accuracy, auroc):
        small = bootstrap_ci(metric, y_small, s_small, resamples=300, seed=1)
        large = bootstrap_ci(metric, y_large, s_large, resamples=300, seed=1)
        assert small.low <= small.estimate <= small.high
        assert large.low <= large.estimate <= large.high
        assert large.estimate == pytest.approx(small.estimate)
        assert large.high - large.low < 0.5 * (small.high - small.low)
    again = bootstrap_ci(accuracy, y_small, s_small, resamples=300, seed=1)
    assert again == bootstrap_ci(accuracy, y_small, s_small, resamples=300, seed=1)


def test_bootstrap_leaves_out_resamples_where_auroc_is_undefined() -> None:
    y = np.array([0, 0, 0, 0, 0, 1])
    scores = np.stack([np.linspace(1, 0, 6), np.linspace(0, 1, 6)], axis=1)
    ci = bootstrap_ci(auroc, y, scores, resamples=200, seed=0)
    # P(resample misses the single positive) = (5/6)^6 ≈ 0.33.
    assert 40 < ci.undefined_resamples < 100
    assert ci.estimate == 1.0 and ci.low == ci.high == 1.0


def test_mcnemar_exact_branch_known_p_value() -> None:
    result = mcnemar_from_counts(10, 2)
    # Two-sided binomial: 2 · P(X ≤ 2 | n=12, p=½) = 2 · 79 / 4096.
    assert result.test == "exact-binomial"
    assert result.p_value == pytest.approx(2 * 79 / 4096)


def test_mcnemar_chi_square_branch_known_p_value() -> None:
    result = mcnemar_from_counts(20, 10)
    assert result.test == "chi-square-corrected"
    assert result.statistic == pytest.approx(81 / 30)
    assert result.p_value == pytest.approx(0.100348, abs=1e-6)


def test_mcnemar_branch_switches_at_25_discordant_pairs() -> None:
    assert mcnemar_from_counts(12, 12).test == "exact-binomial"
    assert mcnemar_from_counts(13, 12).test == "chi-square-corrected"
    assert mcnemar_from_counts(0, 0).p_value == 1.0


def test_mcnemar_counts_discordant_pairs_from_predictions() -> None:
    y = np.array([0, 1, 0, 1, 0, 1])
    a = np.array([0, 1, 0, 1, 1, 0])  # right on 0-3
    b = np.array([1, 0, 0, 1, 0, 0])  # right on 2, 3, 4
    result = mcnemar(y, a, b)
    assert (result.b, result.c) == (2, 1)
    with pytest.raises(ValueError, match="one length"):
        mcnemar(y, a[:3], b)
