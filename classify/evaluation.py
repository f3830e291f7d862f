"""Downstream evaluation: train one classifier under each paradigm, test it on the real test
split, and collect accuracy / AUROC with bootstrap CIs, per-class metrics and McNemar's test
against the Baseline (§4.1, §4.3, §4.5, §4.6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from torch import nn

from classify.augment import AugmentSettings
from classify.data import ClipSet
from classify.metrics import accuracy, auroc, bootstrap_ci, mcnemar, per_class_metrics
from classify.paradigms import (
    PARADIGMS,
    ParadigmInputs,
    check_paradigms,
    expansion_indices,
    run_paradigm,
    subsample_classes,
)
from classify.preprocess import ClipNormalization
from classify.registry import build_classifier, build_kwargs, classifier_spec
from classify.train import ProgressFn, TrainSettings, predict_proba


@dataclass(frozen=True)
class ImbalanceSettings:
    """§4.6: keep `fraction` of the real training clips of `classes`, then (joint-train and
    real-finetune) add synthetic clips of those classes up to the majority class count."""

    classes: tuple[int, ...]
    fraction: float = 0.25


@dataclass(frozen=True)
class EvaluationSettings:
    classifier: str = "i3d"
    paradigms: tuple[str, ...] = PARADIGMS
    train: TrainSettings = field(default_factory=TrainSettings)
    # Epochs of Real-finetune's synthetic pretraining; None: as many as `train.epochs`.
    pretrain_epochs: int | None = None
    augmentation: str = "basic"
    size: int | None = None
    normalization: ClipNormalization = field(default_factory=ClipNormalization)
    tiny: bool = False
    classifier_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained_path: str | None = None
    bootstrap_resamples: int = 2000
    ci_level: float = 0.95
    imbalance: ImbalanceSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluationResult:
    report: dict[str, Any]
    models: dict[str, nn.Module]
    build_config: dict[str, Any]


def _check_inputs(
    real_train: ClipSet, real_test: ClipSet, synthetic: ClipSet | None, num_classes: int
) -> None:
    frames = real_train.clips.shape[1]
    for name, clip_set in (("real test", real_test), ("synthetic", synthetic)):
        if clip_set is not None and clip_set.clips.shape[1] != frames:
            raise ValueError(
                f"{name} clips have {clip_set.clips.shape[1]} frames, real training clips {frames}"
            )
    for name, clip_set in (("real train", real_train), ("real test", real_test), ("synthetic", synthetic)):
        if clip_set is not None and len(clip_set) and int(np.max(clip_set.labels)) >= num_classes:
            raise ValueError(f"{name}: class index {int(np.max(clip_set.labels))} >= {num_classes} classes")
    if len(real_train) == 0 or len(real_test) == 0:
        raise ValueError("evaluation needs real training and test clips")


def _input_size(settings: EvaluationSettings, real_train: ClipSet) -> int:
    if settings.size is not None:
        return settings.size
    height, width = real_train.clips.shape[2:]
    if height != width:
        raise ValueError(f"size: real clips are {height}×{width}; give a square `size` to resize to")
    return int(height)


def _skew(
    real_train: ClipSet, synthetic: ClipSet | None, imbalance: ImbalanceSettings, seed: int
) -> tuple[ClipSet, ClipSet | None, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    skewed = real_train.subset(
        subsample_classes(real_train.labels, imbalance.classes, imbalance.fraction, rng)
    )
    info: dict[str, Any] = {"classes": list(imbalance.classes), "fraction": imbalance.fraction}
    if synthetic is None:
        return skewed, None, info
    chosen, shortfall = expansion_indices(skewed.labels, synthetic.labels, imbalance.classes, rng)
    info["synthetic_shortfall"] = {str(k): v for k, v in shortfall.items()}
    return skewed, synthetic.subset(chosen), info


def _metric_ci(
    metric: Callable, y_true: np.ndarray, probabilities: np.ndarray, settings: EvaluationSettings, seed: int
) -> dict[str, Any]:
    try:
        return bootstrap_ci(
            metric, y_true, probabilities, settings.bootstrap_resamples, settings.ci_level, seed
        ).to_dict()
    except ValueError as error:
        return {"error": str(error)}


def _test_report(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str], settings: EvaluationSettings
) -> dict[str, Any]:
    seed = settings.train.seed
    return {
        "accuracy": _metric_ci(accuracy, y_true, probabilities, settings, seed),
        "auroc": _metric_ci(auroc, y_true, probabilities, settings, seed),
        "per_class": [
            {"class": name, **asdict(metrics)}
            for name, metrics in zip(class_names, per_class_metrics(y_true, probabilities), strict=True)
        ],
        "predictions": probabilities.argmax(axis=1).tolist(),
        "probabilities": probabilities.round(6).tolist(),
    }


def _compare_with_baseline(paradigms: dict[str, dict[str, Any]], y_true: np.ndarray) -> None:
    baseline = paradigms.get("baseline")
    if baseline is None:
        return
    for name, entry in paradigms.items():
        if name == "baseline":
            continue
        entry["delta_vs_baseline"] = {
            metric: entry[metric]["estimate"] - baseline[metric]["estimate"]
            for metric in ("accuracy", "auroc")
            if "estimate" in entry[metric] and "estimate" in baseline[metric]
        }
        entry["mcnemar_vs_baseline"] = mcnemar(
            y_true, np.asarray(entry["predictions"]), np.asarray(baseline["predictions"])
        ).to_dict()


def run_evaluation(
    real_train: ClipSet,
    real_test: ClipSet,
    synthetic: ClipSet | None,
    class_names: Sequence[str],
    settings: EvaluationSettings,
    progress: Callable[[str], ProgressFn] | None = None,
) -> EvaluationResult:
    num_classes = len(class_names)
    paradigm_names = check_paradigms(settings.paradigms)
    _check_inputs(real_train, real_test, synthetic, num_classes)
    size = _input_size(settings, real_train)
    frames = int(real_train.clips.shape[1])
    kwargs = build_kwargs(
        settings.classifier, tiny=settings.tiny, frames=frames, size=size, **settings.classifier_kwargs
    )
    data: dict[str, Any] = {"frames": frames, "size": size, "real_test": real_test.class_counts(num_classes)}
    if settings.imbalance is not None:
        real_train, synthetic, data["imbalance"] = _skew(
            real_train, synthetic, settings.imbalance, settings.train.seed
        )
    data["real_train"] = real_train.class_counts(num_classes)
    data["synthetic"] = synthetic.class_counts(num_classes) if synthetic is not None else None
    pretrain = replace(settings.train, epochs=settings.pretrain_epochs or settings.train.epochs)
    inputs = ParadigmInputs(
        real=real_train,
        synthetic=synthetic,
        num_classes=num_classes,
        size=size,
        normalization=settings.normalization,
        augment=AugmentSettings.for_method(settings.augmentation),
        train=settings.train,
        pretrain=pretrain,
        oversample_real=settings.imbalance is None,
    )

    def build_model() -> nn.Module:
        return build_classifier(
            settings.classifier, num_classes, pretrained_path=settings.pretrained_path, **kwargs
        )

    paradigms: dict[str, dict[str, Any]] = {}
    models: dict[str, nn.Module] = {}
    for name in paradigm_names:
        model, stages = run_paradigm(name, build_model, inputs, progress)
        probabilities = predict_proba(
            model,
            real_test.clips,
            settings.normalization,
            size,
            settings.train.batch_size,
            settings.train.device,
        )
        paradigms[name] = {
            "stages": stages,
            **_test_report(real_test.labels, probabilities, class_names, settings),
        }
        models[name] = model
    _compare_with_baseline(paradigms, real_test.labels)
    report = {
        "classifier": settings.classifier,
        "family": classifier_spec(settings.classifier).family,
        "class_names": list(class_names),
        "settings": settings.to_dict(),
        "data": data,
        "test_labels": np.asarray(real_test.labels).tolist(),
        "paradigms": paradigms,
    }
    build_config = {
        "num_classes": num_classes,
        "in_channels": 1,
        "build_kwargs": kwargs,
        "normalization": settings.normalization.to_dict(),
        "class_names": list(class_names),
        "frames": frames,
        "size": size,
    }
    return EvaluationResult(report, models, build_config)
