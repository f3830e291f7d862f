"""Input fields of the submit form read from the API's own request models, so the form's defaults, bounds and
choices are the ones the API validates (no second copy to drift)."""

from __future__ import annotations

import typing
from dataclasses import dataclass

import annotated_types
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from api.schemas import BankIn, FilterIn, JobIn, SamplerIn


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
class ChoiceField:
    loc: str
    label: str
    default: str
    choices: tuple[str, ...]


BOUND_WORDS = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}


def _bounds_hint(*bounds: tuple[str, float] | None) -> str:
    return ", ".join(
        f"{BOUND_WORDS[op]} {value if isinstance(value, int) else f'{value:g}'}"
        for op, value in filter(None, bounds)
    )


def number_field(model: type[BaseModel], name: str, loc: str, label: str) -> NumberField:
    info = model.model_fields[name]
    lower: tuple[str, float] | None = None
    upper: tuple[str, float] | None = None
    for rule in info.metadata:
        if isinstance(rule, annotated_types.Ge | annotated_types.Gt):
            lower = ("ge", rule.ge) if isinstance(rule, annotated_types.Ge) else ("gt", rule.gt)
        if isinstance(rule, annotated_types.Le | annotated_types.Lt):
            upper = ("le", rule.le) if isinstance(rule, annotated_types.Le) else ("lt", rule.lt)
    is_int = int in typing.get_args(info.annotation) or info.annotation is int
    default = None if info.default is PydanticUndefined else info.default
    return NumberField(
        loc=loc,
        label=label,
        default=default,
        minimum=lower[1] if lower and lower[0] == "ge" else None,
        maximum=upper[1] if upper and upper[0] == "le" else None,
        step="1" if is_int else "any",
        hint=_bounds_hint(lower, upper),
    )


def choice_field(model: type[BaseModel], name: str, loc: str, label: str) -> ChoiceField:
    info = model.model_fields[name]
    return ChoiceField(loc=loc, label=label, default=info.default, choices=typing.get_args(info.annotation))


def text_max_length() -> int:
    return next(rule.max_length for rule in BankIn.model_fields["text"].metadata if hasattr(rule, "max_length"))


def submit_form_fields() -> dict[str, object]:
    return {
        "sampler_name": choice_field(SamplerIn, "name", "sampler.name", "Sampler"),
        "sampler_numbers": [
            number_field(SamplerIn, "steps", "sampler.steps", "Denoising steps"),
            number_field(SamplerIn, "guidance_scale", "sampler.guidance_scale", "Guidance scale"),
            number_field(SamplerIn, "eta", "sampler.eta", "Eta (DDIM noise)"),
        ],
        "seed": number_field(JobIn, "seed", "seed", "Seed"),
        "filter_numbers": [
            number_field(FilterIn, "alpha", "filter.alpha", "Semantic threshold factor α"),
            number_field(FilterIn, "kmeans_k", "filter.kmeans_k", "K-means clusters K"),
            number_field(FilterIn, "kmeans_seed", "filter.kmeans_seed", "K-means seed"),
            number_field(
                FilterIn, "similarity_threshold", "filter.similarity_threshold", "Duplicate similarity threshold"
            ),
        ],
        "filter_scope": choice_field(FilterIn, "scope", "filter.scope", "Duplicate check scope"),
        "samples": number_field(BankIn, "samples", "banks.__i__.samples", "Clips to sample"),
        "text_max_length": text_max_length(),
    }
