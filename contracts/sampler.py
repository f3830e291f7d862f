"""The sampler spec of a job: solver, steps, guidance, DDIM eta and the guided conditions, with its bounds."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.conditions import CONDITION_NAMES, ConditionName

SamplerName = Literal["ddim", "dpmsolver++", "unipc"]
SAMPLER_NAMES: tuple[str, ...] = get_args(SamplerName)
# steps_offset 1 (Table 1) shifts DDIM's leading timesteps by one: 1000 steps would reach t = 1000.
MAX_STEPS = 999
MAX_GUIDANCE_SCALE = 50.0


class SamplerSpec(BaseModel):
    """How one job samples; the API validates a job's `sampler` with it and the generator runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: SamplerName = "ddim"
    steps: int = Field(200, ge=1, le=MAX_STEPS)
    guidance_scale: float = Field(7.5, ge=0.0, le=MAX_GUIDANCE_SCALE)
    eta: float = Field(0.0, ge=0.0, le=1.0, description="DDIM's noise; ddim only (0 for the other solvers)")
    guided_conditions: tuple[ConditionName, ...] | None = Field(
        None,
        min_length=1,
        description="the conditions classifier-free guidance pushes towards (nulled in the unconditional "
        "branch); null = every condition the bank gives",
    )

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_not_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("steps must be an integer, not a boolean")
        return value

    @model_validator(mode="after")
    def _eta_only_with_ddim(self) -> SamplerSpec:
        if self.eta != 0.0 and self.name != "ddim":
            raise ValueError(f"eta applies to ddim only; {self.name!r} needs eta 0, got {self.eta!r}")
        return self

    @property
    def guided(self) -> tuple[str, ...]:
        return CONDITION_NAMES if self.guided_conditions is None else self.guided_conditions

    def to_json(self) -> dict[str, Any]:
        """The spec as provenance records it: `guided_conditions` resolved to the names guided."""
        return {**self.model_dump(), "guided_conditions": list(self.guided)}
