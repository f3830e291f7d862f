"""Request and response bodies of the REST API (they make the OpenAPI document)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.sampler import SamplerSpec
from store.models import AssetKind, BankStatus, JobPhase, JobStatus

T = TypeVar("T")
MAX_SEED = 2**63 - 1
# The filter's bound (filter.settings.MAX_KMEANS_SEED): scikit-learn's random_state is a uint32.
MAX_KMEANS_SEED = 2**32 - 1
# PostgreSQL text cannot hold NUL: such a string must be a 422 naming its field, not a database error.
NUL_FREE = r"^[^\x00]*$"
Text = Annotated[str, StringConstraints(pattern=NUL_FREE)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        None, description="pass as `cursor` to get the next page; null on the last"
    )


class Health(BaseModel):
    status: Literal["ok"]


class ReadyCheck(BaseModel):
    ok: bool
    error: str | None = None


class Ready(BaseModel):
    ready: bool
    checks: dict[str, ReadyCheck]


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    version: str
    checksum: str
    class_names: list[str]
    num_frames: int
    height: int
    width: int
    conditions: list[str]
    registered_at: datetime


class ModelDetailOut(ModelOut):
    quality: dict[str, Any] | None = Field(
        None,
        description="the model directory's quality card (`ctrlgenaug evaluate synthesis --write-card`): "
        "figures per class and overall against a real data build, with their definitions; null when the "
        "model has not been evaluated",
    )


class Info(BaseModel):
    name: str
    version: str
    environment: str
    models: list[ModelOut]


class AssetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: AssetKind
    sha256: str
    media_type: str
    filename: str
    shape: list[int] = Field(description="image prior (H, W); reference clip's motion field (F, 2, H, W)")
    size_bytes: int
    created_at: datetime


class SamplerIn(SamplerSpec):
    """The job's sampler: contracts.sampler.SamplerSpec, the spec the generator runs (same bounds and rules)."""


class FilterIn(BaseModel):
    """The filter's thresholds (paper §3.5, Algorithm 1); same fields and bounds as filter.FilterSettings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    alpha: float = Field(1.0, gt=0.0)
    kmeans_k: int = Field(4, ge=3, le=32)
    kmeans_seed: int = Field(0, ge=0, le=MAX_KMEANS_SEED)
    similarity_threshold: float = Field(0.98, gt=-1.0, le=1.0)
    scope: Literal["group", "job"] = "group"


class BankIn(BaseModel):
    """One condition bank; leave a condition out (null) to drop it."""

    model_config = ConfigDict(extra="forbid")

    class_label: Text | None = None
    text: Text | None = Field(None, max_length=2000)
    image_prior_asset: uuid.UUID | None = None
    motion_asset: uuid.UUID | None = None
    samples: int = Field(ge=1, le=1000)


class BanksFromIn(BaseModel):
    """One bank per real TRAINING clip of a registered dataset: its class, text, first frame and motion."""

    model_config = ConfigDict(extra="forbid")

    dataset: Text = Field(min_length=1, description="dataset name or id")
    samples_per_bank: int = Field(ge=1, le=1000)
    classes: list[Text] | None = Field(None, min_length=1, description="only these classes (default: all)")
    balance_to_majority: bool = Field(
        False,
        description="give each class enough samples that real + synthetic clips equal the majority class's "
        "(majority count × (1 + samples_per_bank))",
    )
    max_banks: int | None = Field(
        None,
        ge=1,
        le=10000,
        description="at most this many banks: training clips drawn at random from the job's seed, spread "
        "evenly over the classes (with balance_to_majority each class's synthetic total is kept, over fewer "
        "banks)",
    )


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Text = Field(min_length=1, description="model name (latest version) or name:version")
    banks: list[BankIn] | None = Field(None, min_length=1, max_length=10000)
    banks_from: BanksFromIn | None = None
    sampler: SamplerIn = Field(default_factory=lambda: SamplerIn.model_validate({}))
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    filter: FilterIn = Field(default_factory=lambda: FilterIn.model_validate({}))

    @model_validator(mode="after")
    def _one_bank_source(self) -> JobIn:
        if (self.banks is None) == (self.banks_from is None):
            raise ValueError("give exactly one of banks or banks_from")
        return self


class BankOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    index: int
    class_label: str | None
    class_index: int | None
    text: str | None
    image_prior_asset: uuid.UUID | None = Field(validation_alias="image_prior_asset_id")
    motion_asset: uuid.UUID | None = Field(validation_alias="motion_asset_id")
    source_clip_id: str | None
    samples: int
    status: BankStatus
    clips_done: int


class Progress(BaseModel):
    banks_total: int
    banks_done: int
    clips_total: int
    clips_done: int
    denoise_step: int
    denoise_steps: int
    phase: JobPhase | None = Field(
        description="what the worker is doing now: loading_model, preparing_conditions, sampling, filtering "
        "or exporting; null while queued and once finished"
    )
    batch: int = Field(description="while sampling: the batch being denoised (1-based) of `batches`")
    batches: int = Field(description="while sampling: the batches this delivery samples the missing clips in")
    eta_seconds: float | None = Field(
        description="while sampling: seconds until the last batch is denoised, from the measured seconds per "
        "denoising step of the current batch × the steps left; null in the other phases"
    )


class FilterResults(BaseModel):
    clips_kept: int
    dropped_counts: dict[str, int]
    band: tuple[float, float] | None
    quality: dict[str, Any] | None = Field(
        description="the job's clips (all, and kept by the filter) against the training clips of the "
        "model's data build, per class and overall: coherence and its ratio to real, improved "
        "precision/recall and coverage, memorisation; with the dataset, threshold and definitions; null "
        "before filtering and when the model names no data build registered in this project"
    )
    quality_reason: str | None = Field(description="why quality is null; null when it is given")


class JobOut(BaseModel):
    id: uuid.UUID
    status: JobStatus
    model: str
    model_version: str
    seed: int
    sampler: dict[str, Any]
    filter: dict[str, Any]
    banks: list[BankOut]
    progress: Progress
    results: FilterResults
    timings: dict[str, float]
    error: str | None
    cancel_requested: bool
    deliveries: int
    database_ready: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobSummary(BaseModel):
    id: uuid.UUID
    status: JobStatus
    model: str
    model_version: str
    progress: Progress
    created_at: datetime
    finished_at: datetime | None


class ClipOut(BaseModel):
    id: uuid.UUID
    job_id: uuid.UUID
    bank_index: int
    index_in_bank: int
    seed: int
    sha256: str
    size_bytes: int
    kept: bool | None
    reason: str | None
    loss: float | None
    group_threshold: float | None
    vae_seq: float | None
    theta: float | None
    preview_url: str | None
    created_at: datetime


class ClipDetail(ClipOut):
    download_url: str | None
    provenance: dict[str, Any]


class DatabaseLink(BaseModel):
    url: str
    expires_in: int
    sha256: str | None
    size_bytes: int | None


class DatasetOut(BaseModel):
    id: uuid.UUID
    name: str
    manifest_sha256: str
    class_names: list[str]
    training_clips: int
    created_at: datetime


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    kind: str
    payload: dict[str, Any]
    created_at: datetime
    prev_hash: str
    hash: str


class AuditVerification(BaseModel):
    ok: bool
    events: int
    first_bad_seq: int | None
    message: str
