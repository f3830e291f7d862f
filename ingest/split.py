"""Patient-level train/test split; a class with a single patient is split by time instead."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Split = Literal["train", "test"]
SplitBy = Literal["patient", "time"]


@dataclass(frozen=True)
class SplitItem:
    """One clip as the splitter sees it; `order` sorts a patient's clips in time (source, part, start)."""

    patient_id: str
    class_name: str
    order: tuple[str, str, int]


@dataclass(frozen=True)
class Assignment:
    split: Split
    split_by: SplitBy


def _time_split_patients(items: Sequence[SplitItem]) -> set[str]:
    """Patients who are the only patient of some class: no patient-level split can put that class
    on both sides, so their clips are split by time (see docs/decisions.md, "ingest")."""
    patients_of: dict[str, set[str]] = defaultdict(set)
    for item in items:
        patients_of[item.class_name].add(item.patient_id)
    return {next(iter(ps)) for ps in patients_of.values() if len(ps) == 1}


def _test_patients(
    items: Sequence[SplitItem], patients: list[str], test_fraction: float, seed: int
) -> set[str]:
    """Seeded greedy choice: first one test patient for every class that has two or more patients,
    then more patients (in seeded order) while that brings the test clip count nearer the target.
    A patient is never moved to test if that would leave one of its classes without a train patient."""
    clips = {p: 0 for p in patients}
    classes_of: dict[str, set[str]] = defaultdict(set)
    patients_of: dict[str, set[str]] = defaultdict(set)
    for item in items:
        if item.patient_id in clips:
            clips[item.patient_id] += 1
            classes_of[item.patient_id].add(item.class_name)
            patients_of[item.class_name].add(item.patient_id)
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    target = test_fraction * sum(clips.values())
    test: set[str] = set()

    def keeps_train(patient: str) -> bool:
        return all(patients_of[c] - test - {patient} for c in classes_of[patient])

    for class_name in sorted(patients_of):
        if len(patients_of[class_name]) >= 2 and not patients_of[class_name] & test:
            candidate = next((p for p in order if class_name in classes_of[p] and keeps_train(p)), None)
            if candidate is not None:
                test.add(candidate)
    count = sum(clips[p] for p in test)
    for patient in order:
        if patient in test or not keeps_train(patient):
            continue
        if abs(count + clips[patient] - target) < abs(count - target):
            test.add(patient)
            count += clips[patient]
    return test


def assign_splits(items: Sequence[SplitItem], test_fraction: float, seed: int) -> list[Assignment]:
    """Train/test for every item. Patients split at patient level never appear on both sides;
    a time-split patient's clips go to test from the end of its time order (`split_by="time"`)."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    by_time = _time_split_patients(items) if test_fraction > 0 else set()
    patients = sorted({item.patient_id for item in items} - by_time)
    test = _test_patients(items, patients, test_fraction, seed) if test_fraction > 0 else set()
    assignments = [Assignment("test" if item.patient_id in test else "train", "patient") for item in items]
    for patient in by_time:
        indices = sorted(
            (i for i, it in enumerate(items) if it.patient_id == patient), key=lambda i: items[i].order
        )
        n_test = min(len(indices) - 1, max(1, round(test_fraction * len(indices)))) if len(indices) > 1 else 0
        for rank, index in enumerate(indices):
            assignments[index] = Assignment("test" if rank >= len(indices) - n_test else "train", "time")
    return assignments
