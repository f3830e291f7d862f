"""Planning banks from a dataset's training clips: which clips (at most `max_banks`, balanced by class, drawn
from the job's seed) and how many samples each bank gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def class_shares(available: Mapping[str, int], total: int) -> dict[str, int]:
    """Split `total` banks over the classes as evenly as their clips allow: a class with fewer clips than its
    share gives the rest to the others; a remainder goes to the classes in the given order."""
    shares = dict.fromkeys(available, 0)
    remaining = min(total, sum(available.values()))
    open_classes = [name for name, count in available.items() if count > 0]
    while remaining:
        share, extra = divmod(remaining, len(open_classes))
        for position, name in enumerate(open_classes):
            take = min(share + (position < extra), available[name] - shares[name])
            shares[name] += take
            remaining -= take
        open_classes = [name for name in open_classes if shares[name] < available[name]]
    return shares


def select_clips(clips_by_class: Mapping[str, Sequence[T]], max_banks: int, seed: int) -> dict[str, list[T]]:
    """At most `max_banks` clips, balanced by class (`class_shares`), each class's drawn at random without
    replacement from `seed` and kept in their given order."""
    shares = class_shares({name: len(clips) for name, clips in clips_by_class.items()}, max_banks)
    rng = np.random.default_rng(seed)
    chosen = {}
    for name, clips in clips_by_class.items():
        picked = rng.choice(len(clips), size=shares[name], replace=False)
        chosen[name] = [clips[int(i)] for i in sorted(picked)]
    return chosen


def balanced_samples(
    clips_per_class: Mapping[str, int],
    samples_per_bank: int,
    banks_per_class: Mapping[str, int] | None = None,
) -> dict[str, list[int]]:
    """Samples per bank so every class reaches real + synthetic = majority × (1 + samples_per_bank); a class's
    synthetic total is spread over its banks (`banks_per_class`, default one per real clip), floor/ceil."""
    target = max(clips_per_class.values()) * (1 + samples_per_bank)
    banks = banks_per_class or clips_per_class
    plan = {}
    for name, count in clips_per_class.items():
        if banks[name] == 0:
            continue
        base, extra = divmod(target - count, banks[name])
        plan[name] = [base + (1 if i < extra else 0) for i in range(banks[name])]
    return plan
