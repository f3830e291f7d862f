"""Input fields of the submit form read from the API's own request models, so the form's defaults, bounds and
choices are the ones the API validates (no second copy to drift)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from api.schemas import BankIn, BanksFromIn, FilterIn, JobIn, SamplerIn


@dataclass(frozen=True)
class NumberField:
    loc: str
    label: str
    default: float | int | None
    minimum: float | int | None
    maximum: float | int | None
    step: str
    hint: str


@dataclass(frozen=True)
class SwitchField:
    """A nullable on/off setting: empty (the API's default), on or off."""

    loc: str
    label: str
    hint: str


@dataclass(frozen=True)
class ChoiceField:
    loc: str
    label: str
    default: str
    choices: tuple[str, ...]


# The README's recommendation for trials, proposed by the form: a fast solver (the API's own default when a
# request names no sampler stays the paper's DDIM 200).
FORM_SAMPLER = SamplerIn.model_validate({"name": "dpmsolver++", "steps": 20})
# GPU time per clip and denoising step, measured on one H200 with the paper-sized model (README, GPU users).
H200_SECONDS_PER_CLIP_STEP = 0.027

BOUND_WORDS = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}


def _bounds(metadata: list[Any]) -> dict[str, float]:
    """A field's ge/gt/le/lt constraints in declaration order, e.g. {"ge": 1, "le": 1000}."""
    return {op: getattr(rule, op) for rule in metadata for op in BOUND_WORDS if hasattr(rule, op)}


def _number_text(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def number_field(model: type[BaseModel], name: str, loc: str, label: str) -> NumberField:
    info = model.model_fields[name]
    bounds = _bounds(info.metadata)
    is_int = info.annotation is int or int in get_args(info.annotation)
    return NumberField(
        loc=loc,
        label=label,
        default=None if info.default is PydanticUndefined else info.default,
        minimum=bounds.get("ge"),
        maximum=bounds.get("le"),
        step="1" if is_int else "any",
        hint=", ".join(f"{BOUND_WORDS[op]} {_number_text(value)}" for op, value in bounds.items()),
    )


def choice_field(model: type[BaseModel], name: str, loc: str, label: str) -> ChoiceField:
    info = model.model_fields[name]
    return ChoiceField(loc=loc, label=label, default=info.default, choices=get_args(info.annotation))


def switch_field(model: type[BaseModel], name: str, loc: str, label: str) -> SwitchField:
    return SwitchField(loc=loc, label=label, hint=str(model.model_fields[name].description))


def text_max_length() -> int:
    return int(
        next(rule.max_length for rule in BankIn.model_fields["text"].metadata if hasattr(rule, "max_length"))
    )


def submit_form_fields() -> dict[str, object]:
    return {
        "sampler_name": replace(
            choice_field(SamplerIn, "name", "sampler.name", "Sampler"), default=FORM_SAMPLER.name
        ),
        "sampler_numbers": [
            replace(
                number_field(SamplerIn, "steps", "sampler.steps", "Denoising steps"),
                default=FORM_SAMPLER.steps,
            ),
            number_field(SamplerIn, "guidance_scale", "sampler.guidance_scale", "Guidance scale"),
            number_field(SamplerIn, "eta", "sampler.eta", "Eta (DDIM noise)"),
        ],
        "seed": number_field(JobIn, "seed", "seed", "Seed"),
        "filter_numbers": [
            number_field(FilterIn, "alpha", "filter.alpha", "Semantic threshold factor α"),
            number_field(FilterIn, "kmeans_k", "filter.kmeans_k", "K-means clusters K"),
            number_field(FilterIn, "kmeans_seed", "filter.kmeans_seed", "K-means seed"),
            number_field(
                FilterIn,
                "similarity_threshold",
                "filter.similarity_threshold",
                "Duplicate similarity threshold",
            ),
        ],
        "filter_scope": choice_field(FilterIn, "scope", "filter.scope", "Duplicate check scope"),
        # the checks against the model's real training data (issue 17)
        "filter_switches": [
            switch_field(
                FilterIn, "memorised", "filter.memorised", "Drop clips memorised from training data"
            ),
            switch_field(FilterIn, "off_manifold", "filter.off_manifold", "Drop clips off the real manifold"),
        ],
        "reference_numbers": [
            number_field(
                FilterIn, "memorised_threshold", "filter.memorised_threshold", "Memorised threshold"
            ),
            number_field(FilterIn, "manifold_k", "filter.manifold_k", "Manifold k"),
            number_field(
                FilterIn, "manifold_min_share", "filter.manifold_min_share", "Manifold minimum share"
            ),
        ],
        "manifold_features": choice_field(
            FilterIn, "manifold_features", "filter.manifold_features", "Manifold features"
        ),
        "samples": number_field(BankIn, "samples", "banks.__i__.samples", "Clips to sample"),
        "samples_per_bank": number_field(
            BanksFromIn, "samples_per_bank", "banks_from.samples_per_bank", "Clips per bank"
        ),
        "max_banks": number_field(
            BanksFromIn, "max_banks", "banks_from.max_banks", "At most this many banks"
        ),
        "text_max_length": text_max_length(),
        "seconds_per_clip_step": H200_SECONDS_PER_CLIP_STEP,
    }
