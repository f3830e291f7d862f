"""Condition names as the model card, the store, the API and the sampler spell them (paper §3.3)."""

from __future__ import annotations

from typing import Literal, get_args

ConditionName = Literal["class_label", "text", "image_prior", "motion_field"]
CONDITION_NAMES: tuple[str, ...] = get_args(ConditionName)
