"""Diagnostic metrics and statistics (paper §4.2–4.3): accuracy, macro one-vs-rest AUROC,
per-class sensitivity/specificity/precision/F1, percentile-bootstrap 95% CIs, McNemar's test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import sklearn
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

MetricFn = Callable[[np.ndarray, np.ndarray], float]


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 1:
        raise ValueError(f"y_true: expected 1-D class indices, got shape {y_true.shape}")
    if y_score.ndim != 2 or y_score.shape[0] != y_true.shape[0] or y_score.shape[1] < 2:
        raise ValueError(
            f"y_score: expected (N={y_true.shape[0]}, num_classes>=2) probabilities, got {y_score.shape}"
        )
    if y_true.size and (y_true.min() < 0 or y_true.max() >= y_score.shape[1]):
        raise ValueError(f"y_true: class indices must lie in [0, {y_score.shape[1]})")
    return y_true.astype(np.int64), y_score


def accuracy(y_true: np.ndarray, y_score: np.ndarray) -> float:
    y_true, y_score = _check(y_true, y_score)
    return float(accuracy_score(y_true, y_score.argmax(axis=1)))


def auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Binary: AUROC of the positive class; K > 2: macro average of one-vs-rest AUROCs.
    Raises ValueError when a class is absent from `y_true` (AUROC undefined)."""
    y_true, y_score = _check(y_true, y_score)
    num_classes = y_score.shape[1]
    if np.unique(y_true).size < num_classes:
        raise ValueError(f"auroc: every one of the {num_classes} classes must occur in y_true")
    if num_classes == 2:
        return float(roc_auc_score(y_true, y_score[:, 1]))
    probabilities = y_score / y_score.sum(axis=1, keepdims=True)
    return float(
        roc_auc_score(
            y_true, probabilities, multi_class="ovr", average="macro", labels=np.arange(num_classes)
        )
    )


@dataclass(frozen=True)
class ClassMetrics:
    sensitivity: float
    specificity: float
    precision: float
    f1: float
    support: int


def per_class_metrics(y_true: np.ndarray, y_score: np.ndarray) -> list[ClassMetrics]:
    """One-vs-rest sensitivity (recall), specificity, precision and F1 for every class
    (0 where a ratio has an empty denominator)."""
    y_true, y_score = _check(y_true, y_score)
    labels = np.arange(y_score.shape[1])
    y_pred = y_score.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    confusion = multilabel_confusion_matrix(y_true, y_pred, labels=labels)
    metrics = []
    for k in labels:
        (tn, fp), _ = confusion[k]
        specificity = tn / (tn + fp) if tn + fp else 0.0
        metrics.append(
            ClassMetrics(
                float(recall[k]), float(specificity), float(precision[k]), float(f1[k]), int(support[k])
            )
        )
    return metrics


def roc_curves(y_true: np.ndarray, y_score: np.ndarray) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """One-vs-rest ROC curve (fpr, tpr) per class; None for a class absent from `y_true`."""
    y_true, y_score = _check(y_true, y_score)
    curves: list[tuple[np.ndarray, np.ndarray] | None] = []
    for k in range(y_score.shape[1]):
        positives = y_true == k
        if positives.all() or not positives.any():
            curves.append(None)
            continue
        fpr, tpr, _ = roc_curve(positives, y_score[:, k])
        curves.append((fpr, tpr))
    return curves


@dataclass(frozen=True)
class ConfidenceInterval:
    estimate: float
    low: float
    high: float
    level: float
    resamples: int
    # Resamples where the metric is undefined (e.g. AUROC with a class missing) are left out.
    undefined_resamples: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bootstrap_ci(
    metric: MetricFn,
    y_true: np.ndarray,
    y_score: np.ndarray,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    """Non-parametric percentile bootstrap over test clips (§4.3: 2,000 resamples, 2.5th and
    97.5th percentiles). Hand-written because scipy.stats.bootstrap cannot leave out
    resamples where the metric is undefined."""
    y_true, y_score = _check(y_true, y_score)
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    estimate = metric(y_true, y_score)
    rng = np.random.default_rng(seed)
    n = y_true.shape[0]
    values = []
    # Inputs were checked once above; sklearn's per-call validation would dominate the run time.
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        for _ in range(resamples):
            index = rng.integers(0, n, size=n)
            try:
                values.append(metric(y_true[index], y_score[index]))
            except ValueError:
                continue
    if not values:
        raise ValueError("bootstrap_ci: the metric is undefined on every resample")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return ConfidenceInterval(
        float(estimate), float(low), float(high), level, resamples, resamples - len(values)
    )


@dataclass(frozen=True)
class McNemarResult:
    # b: method A right and B wrong; c: A wrong and B right.
    b: int
    c: int
    statistic: float | None
    p_value: float
    test: str

    def to_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


def mcnemar(
    y_true: np.ndarray, y_pred_a: np.ndarray, y_pred_b: np.ndarray, exact_below: int = 25
) -> McNemarResult:
    """McNemar's test on paired predictions of one test set (§4.3, Dietterich 1998): exact
    two-sided binomial test when b + c < `exact_below`, else chi-square with continuity
    correction, (|b − c| − 1)² / (b + c) on 1 degree of freedom."""
    y_true, y_pred_a, y_pred_b = (np.asarray(a) for a in (y_true, y_pred_a, y_pred_b))
    if not y_true.shape == y_pred_a.shape == y_pred_b.shape or y_true.ndim != 1:
        raise ValueError(
            f"mcnemar: y_true, y_pred_a, y_pred_b must be 1-D of one length, got "
            f"{y_true.shape}, {y_pred_a.shape}, {y_pred_b.shape}"
        )
    right_a = y_pred_a == y_true
    right_b = y_pred_b == y_true
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    return mcnemar_from_counts(b, c, exact_below)


def mcnemar_from_counts(b: int, c: int, exact_below: int = 25) -> McNemarResult:
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar: discordant counts must be non-negative, got b={b}, c={c}")
    discordant = b + c
    if discordant < exact_below:
        if discordant == 0:
            return McNemarResult(b, c, None, 1.0, "exact-binomial")
        p_value = stats.binomtest(min(b, c), discordant, 0.5, alternative="two-sided").pvalue
        return McNemarResult(b, c, None, float(min(p_value, 1.0)), "exact-binomial")
    statistic = (abs(b - c) - 1) ** 2 / discordant
    return McNemarResult(
        b, c, float(statistic), float(stats.chi2.sf(statistic, df=1)), "chi-square-corrected"
    )
