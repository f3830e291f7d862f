"""The class-name rule of a model card: at least one class, each a non-empty string, none twice (a class's
index is its position, so a repeated name would make two indices for one class)."""

from __future__ import annotations

from collections.abc import Sequence


def check_class_names(names: Sequence[object]) -> tuple[str, ...]:
    """`names` as a tuple; raises ValueError naming the rule they break."""
    if not names:
        raise ValueError("class_names must name at least one class")
    checked = tuple(name for name in names if isinstance(name, str) and name)
    if len(checked) != len(names):
        raise ValueError(f"class_names must be non-empty strings, got {list(names)}")
    if len(set(checked)) != len(checked):
        raise ValueError(f"class_names must be unique, got {list(checked)}")
    return checked
