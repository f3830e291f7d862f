"""Request and response bodies of the REST API (they make the OpenAPI document)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from contracts.sampler import SamplerSpec
from filter.settings import FilterSettings, ReferenceSettings
from store.models import AssetKind, BankStatus, JobPhase, JobStatus, WebhookStatus
from store.webhook_urls import WebhookUrlRefused, split_url

T = TypeVar("T")
MAX_SEED = 2**63 - 1
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


class DeletionOut(BaseModel):
    id: uuid.UUID = Field(description="the deleted asset or job")
    objects_deleted: int = Field(description="stored objects removed (uploads, arrays, clips, previews)")
    audit_seq: int = Field(description="the audit event recording the deletion (`/v1/audit/events`)")


class SamplerIn(SamplerSpec):
    """The job's sampler: contracts.sampler.SamplerSpec, the spec the generator runs (same bounds, rules)."""


def _field(model: type[BaseModel], name: str) -> Any:
    """`model`'s declaration of field `name` (default, bounds, description), typed Any for mypy."""
    return model.model_fields[name]


class FilterIn(BaseModel):
    """The filter's settings: Algorithm 1's thresholds (paper §3.5) and the two checks against the model's
    real training data (`memorised` before Algorithm 1, `off_manifold` after it). Each field, its bounds and
    default are filter.settings' own."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    alpha: float = _field(FilterSettings, "alpha")
    kmeans_k: int = _field(FilterSettings, "kmeans_k")
    kmeans_seed: int = _field(FilterSettings, "kmeans_seed")
    similarity_threshold: float = _field(FilterSettings, "similarity_threshold")
    scope: Literal["group", "job"] = _field(FilterSettings, "scope")
    memorised: bool | None = Field(
        None,
        description="drop clips closer than memorised_threshold to a real training clip of the model's data "
        "build, before Algorithm 1; null: on when the model names a data build registered in this project",
    )
    memorised_threshold: float | None = _field(ReferenceSettings, "memorised_threshold")
    off_manifold: bool | None = Field(
        None,
        description="drop Algorithm 1's survivors whose frames fall off the real frames' k-NN manifold of "
        "their class; null: on when the model names a data build registered in this project",
    )
    manifold_k: int = _field(ReferenceSettings, "manifold_k")
    manifold_min_share: float = _field(ReferenceSettings, "manifold_min_share")
    manifold_features: Literal["spectrum", "pixels"] = _field(ReferenceSettings, "manifold_features")
    spectrum_bands: int = _field(ReferenceSettings, "spectrum_bands")
    feature_size: int = _field(ReferenceSettings, "feature_size")
    feature_std_floor: float = _field(ReferenceSettings, "feature_std_floor")
    manifold_radius_quantile: float | None = _field(ReferenceSettings, "manifold_radius_quantile")


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


WebhookEvent = Literal["started", "progress", "succeeded", "failed", "cancelled"]


class WebhookIn(BaseModel):
    """Where the job's events are POSTed, signed with the project's webhook secret (docs/webhooks.md)."""

    model_config = ConfigDict(extra="forbid")

    url: Text = Field(
        min_length=1,
        max_length=2000,
        description="http(s) URL of the receiver; not this service, not a link-local or metadata address, "
        "not a loopback or private one unless the service allows it (webhook_allow_private_hosts)",
    )
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(get_args(WebhookEvent)),
        min_length=1,
        description="the events to send (default: all); progress is sent at most every "
        "webhook_progress_interval_s",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            split_url(url)
        except WebhookUrlRefused as exc:
            raise ValueError(str(exc)) from exc
        return url


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Text = Field(min_length=1, description="model name (latest version) or name:version")
    banks: list[BankIn] | None = Field(None, min_length=1, max_length=10000)
    banks_from: BanksFromIn | None = None
    sampler: SamplerIn = Field(default_factory=lambda: SamplerIn.model_validate({}))
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    filter: FilterIn = Field(default_factory=lambda: FilterIn.model_validate({}))
    webhook: WebhookIn | None = None

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
    checks: dict[str, Any] | None = Field(
        None,
        description="what the filter's reference checks (memorised, off_manifold) ran against: the model's "
        "data build (dataset, manifest_sha256, training clips), the memorised threshold and where it came "
        "from, the feature space; null when neither check ran or before filtering",
    )


class WebhookOut(BaseModel):
    url: str
    events: list[WebhookEvent]


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
    webhook: WebhookOut | None = Field(description="where the job's events go (GET /v1/jobs/{id}/webhooks)")
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
    real_distance: float | None = Field(
        description="RMS pixel distance in [0, 1] units to the nearest real training clip; null: not checked"
    )
    real_clip: str | None = Field(description="that training clip's id in the data build (never its pixels)")
    manifold_share: float | None = Field(description="share of the clip's frames on the real k-NN manifold")
    memorised: bool | None = Field(description="closer than the memorised threshold; null: check off")
    off_manifold: bool | None = Field(description="under manifold_min_share; null: check off")
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


class WebhookDeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="also the X-CtrlGenAug-Delivery header and the body's `id`")
    event: WebhookEvent
    url: str
    status: WebhookStatus
    attempts: int
    last_status_code: int | None = Field(description="the receiver's answer to the latest attempt")
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="null once delivered or failed")
    delivered_at: datetime | None
    created_at: datetime


class WebhookSecretOut(BaseModel):
    secret: str = Field(description="verifies X-CtrlGenAug-Signature (docs/webhooks.md)")
    created_at: datetime
