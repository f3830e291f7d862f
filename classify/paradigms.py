"""The three training paradigms of §4.1 and the class-skewed setting of §4.6.

Baseline: real clips only. Real-finetune: pretrain on synthetic clips, then finetune on real.
Joint-train: real clips over-sampled to the synthetic count, then trained on the mix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from classify.augment import AugmentSettings, build_clip_transform
from classify.data import ClipDataset, ClipSet
from classify.preprocess import ClipNormalization
from classify.train import ProgressFn, TrainSettings, train_classifier

PARADIGMS: tuple[str, ...] = ("baseline", "real-finetune", "joint-train")


def check_paradigms(names: Sequence[str]) -> list[str]:
    unknown = [name for name in names if name not in PARADIGMS]
    if unknown or not names:
        raise ValueError(f"paradigms: unknown {unknown or names!r}; choose from {', '.join(PARADIGMS)}")
    return list(dict.fromkeys(names))


def oversample_indices(count: int, target: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into `count` items, `max(count, target)` long: every item ⌊target/count⌋ times,
    plus distinct random items for the remainder (no item is dropped)."""
    if count < 1:
        raise ValueError("oversample: there are no real clips to over-sample")
    if target <= count:
        return np.arange(count)
    repeats, remainder = divmod(target, count)
    extra = rng.choice(count, size=remainder, replace=False)
    return np.concatenate([np.tile(np.arange(count), repeats), np.sort(extra)])


def subsample_classes(
    labels: np.ndarray, classes: Sequence[int], fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """§4.6: keep a random `fraction` (at least one clip) of each class in `classes`, all
    clips of the others; returns sorted kept indices."""
    if not 0 < fraction <= 1:
        raise ValueError(f"imbalance fraction must lie in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    keep = [np.flatnonzero(~np.isin(labels, classes))]
    for k in classes:
        members = np.flatnonzero(labels == k)
        if members.size == 0:
            raise ValueError(f"imbalance: class {k} has no real training clips")
        size = max(1, int(round(fraction * members.size)))
        keep.append(rng.choice(members, size=size, replace=False))
    return np.sort(np.concatenate(keep))


def expansion_indices(
    real_labels: np.ndarray, synthetic_labels: np.ndarray, classes: Sequence[int], rng: np.random.Generator
) -> tuple[np.ndarray, dict[int, int]]:
    """§4.6: synthetic clips that bring each class in `classes` up to the majority real
    count. Returns the chosen indices and, per class, how many synthetic clips were short."""
    real_counts = np.bincount(np.asarray(real_labels), minlength=max(classes) + 1)
    majority = int(real_counts.max())
    chosen, shortfall = [], {}
    for k in classes:
        needed = max(0, majority - int(real_counts[k]))
        members = np.flatnonzero(np.asarray(synthetic_labels) == k)
        take = min(needed, members.size)
        shortfall[int(k)] = needed - take
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64), shortfall


@dataclass(frozen=True)
class ParadigmInputs:
    real: ClipSet
    synthetic: ClipSet | None
    num_classes: int
    size: int
    normalization: ClipNormalization
    augment: AugmentSettings
    train: TrainSettings
    pretrain: TrainSettings
    # False in the §4.6 setting, where the synthetic clips already balance the real ones.
    oversample_real: bool = True


def training_sets(paradigm: str, inputs: ParadigmInputs) -> list[list[ClipSet]]:
    """The training stages of a paradigm, each a list of clip sets trained on together."""
    if paradigm == "baseline":
        return [[inputs.real]]
    if inputs.synthetic is None or len(inputs.synthetic) == 0:
        raise ValueError(f"paradigm {paradigm!r} needs synthetic clips")
    if paradigm == "real-finetune":
        return [[inputs.synthetic], [inputs.real]]
    if paradigm == "joint-train":
        real = inputs.real
        if inputs.oversample_real:
            rng = np.random.default_rng(inputs.train.seed)
            real = real.subset(oversample_indices(len(real), len(inputs.synthetic), rng))
        return [[real, inputs.synthetic]]
    raise ValueError(f"paradigm: unknown {paradigm!r}; choose from {', '.join(PARADIGMS)}")


def _dataset(sets: list[ClipSet], inputs: ParadigmInputs) -> Dataset:
    transform = build_clip_transform(inputs.augment, inputs.size)
    return ConcatDataset(
        [ClipDataset(s.clips, s.labels, inputs.size, inputs.normalization, transform) for s in sets]
    )


def run_paradigm(
    paradigm: str,
    build_model: Callable[[], nn.Module],
    inputs: ParadigmInputs,
    progress: Callable[[str], ProgressFn] | None = None,
) -> tuple[nn.Module, list[dict[str, object]]]:
    """Trains a fresh model under `paradigm`; returns it with one record per stage
    (clip counts per class and the loss history)."""
    model = build_model()
    stages = training_sets(paradigm, inputs)
    records = []
    for index, sets in enumerate(stages):
        is_pretraining = len(stages) == 2 and index == 0
        settings = inputs.pretrain if is_pretraining else inputs.train
        stage_name = "pretrain-synthetic" if is_pretraining else "train"
        losses = train_classifier(
            model,
            _dataset(sets, inputs),
            settings,
            inputs.num_classes,
            mixing=inputs.augment.mixing,
            mix_alpha=inputs.augment.mix_alpha,
            progress=progress(f"{paradigm}/{stage_name}") if progress else None,
        )
        counts = np.sum([s.class_counts(inputs.num_classes) for s in sets], axis=0).tolist()
        records.append(
            {"stage": stage_name, "clips": int(sum(counts)), "class_counts": counts, "losses": losses}
        )
    return model, records
