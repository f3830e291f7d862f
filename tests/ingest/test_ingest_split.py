"""Patient-level split: no patient on both sides; single-patient classes split by time and flagged."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.split import SplitItem, assign_splits


def _items(spec: list[tuple[str, str, int]]) -> list[SplitItem]:
    """(patient, class, number of clips) → items with increasing start frames per patient."""
    return [SplitItem(p, c, (f"{p}.dcm", "", 8 * k)) for p, c, n in spec for k in range(n)]


@settings(max_examples=80, deadline=None)
@given(
    spec=st.lists(
        st.tuples(st.sampled_from([f"p{i}" for i in range(12)]), st.sampled_from("ABC"), st.integers(1, 6)),
        min_size=1,
        max_size=20,
        unique_by=lambda t: t[0],
    ),
    fraction=st.floats(0.05, 0.6),
    seed=st.integers(0, 10),
)
def test_patient_split_never_shares_a_patient_and_covers_classes(spec, fraction: float, seed: int) -> None:
    items = _items(spec)
    assignments = assign_splits(items, fraction, seed)
    sides: dict[str, set[str]] = defaultdict(set)
    for item, a in zip(items, assignments, strict=True):
        if a.split_by == "patient":
            sides[item.patient_id].add(a.split)
    assert all(len(s) == 1 for s in sides.values())
    patients_of: dict[str, set[str]] = defaultdict(set)
    for item in items:
        patients_of[item.class_name].add(item.patient_id)
    for class_name, patients in patients_of.items():
        splits = {
            a.split for item, a in zip(items, assignments, strict=True) if item.class_name == class_name
        }
        if len(patients) >= 2:
            assert splits == {"train", "test"}, class_name
        else:
            assert all(
                a.split_by == "time"
                for item, a in zip(items, assignments, strict=True)
                if item.patient_id in patients
            )


def test_single_patient_class_is_split_by_time_at_its_end() -> None:
    items = _items([("echo", "US", 15), ("a", "MR", 3), ("b", "MR", 4)])
    assignments = assign_splits(items, 0.2, seed=0)
    us = [a for item, a in zip(items, assignments, strict=True) if item.class_name == "US"]
    assert [a.split for a in us] == ["train"] * 12 + ["test"] * 3
    assert {a.split_by for a in us} == {"time"}


def test_split_is_deterministic_under_a_seed_and_varies_with_it() -> None:
    items = _items([(f"p{i}", "AB"[i % 2], 2 + i % 3) for i in range(20)])
    first = assign_splits(items, 0.25, seed=3)
    assert first == assign_splits(items, 0.25, seed=3)
    assert any(assign_splits(items, 0.25, seed=s) != first for s in range(4, 10))


def test_test_share_is_near_the_fraction() -> None:
    items = _items([(f"p{i}", "ABC"[i % 3], 4) for i in range(30)])
    tests = sum(a.split == "test" for a in assign_splits(items, 0.2, seed=0))
    assert abs(tests - 0.2 * len(items)) <= 4


def test_zero_fraction_puts_everything_in_train() -> None:
    items = _items([("echo", "US", 5), ("a", "MR", 3)])
    assert {a.split for a in assign_splits(items, 0.0, seed=0)} == {"train"}


def test_bad_fraction_is_refused() -> None:
    with pytest.raises(ValueError, match=r"test_fraction must be in \[0, 1\)"):
        assign_splits(_items([("a", "A", 2)]), 1.0, seed=0)
