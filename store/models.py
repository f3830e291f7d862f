"""SQLAlchemy models: projects, keys, models, assets, datasets, jobs, banks, clips, outbox, audit."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from contracts.jobs import FINISHED_JOB_STATUSES as FINISHED_JOB_STATUSES
from contracts.jobs import JobStatus as JobStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


def _enum(cls: type[enum.Enum], length: int = 16) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class JobPhase(str, enum.Enum):
    """What a delivery of a job is doing now; NULL while it is queued and once it has finished."""

    loading_model = "loading_model"
    preparing_conditions = "preparing_conditions"
    sampling = "sampling"
    filtering = "filtering"
    exporting = "exporting"


class BankStatus(str, enum.Enum):
    pending = "pending"
    generating = "generating"
    done = "done"
    failed = "failed"


class AssetKind(str, enum.Enum):
    image_prior = "image_prior"
    reference_clip = "reference_clip"


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # uploaded assets older than this many days are deleted by the retention sweep; NULL: kept
    asset_retention_days: Mapped[int | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # what the key may do (store.keys.SCOPES)
    scopes: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    project: Mapped[Project] = relationship(lazy="joined")


class ModelRecord(Base):
    """A registered generator model directory (see docs/contracts.md "Model directory")."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
    checksum: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    class_names: Mapped[list[Any]]
    num_frames: Mapped[int]
    height: Mapped[int]
    width: Mapped[int]
    conditions: Mapped[list[Any]]
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Asset(Base):
    """An uploaded condition, content-addressed per project: `object_key` holds the uploaded bytes,
    `array_object_key` the decoded array as `.npy` (image prior uint8 (H, W); reference clip's
    motion field float32 (F, 2, H, W))."""

    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("project_id", "kind", "sha256"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AssetKind] = mapped_column(_enum(AssetKind))
    sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(255))
    shape: Mapped[list[Any]]
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(Text)
    array_object_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    class_names: Mapped[list[Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clips: Mapped[list[DatasetClip]] = relationship(
        back_populates="dataset", order_by="DatasetClip.clip_id", cascade="all, delete-orphan"
    )


class DatasetClip(Base):
    """A real TRAINING clip of a registered dataset; test clips are never registered."""

    __tablename__ = "dataset_clips"
    __table_args__ = (UniqueConstraint("dataset_id", "clip_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    clip_id: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    class_name: Mapped[str] = mapped_column(String(100))
    class_index: Mapped[int]
    text: Mapped[str | None] = mapped_column(Text)
    # NULL before revision 0003 (and for manifests without one): the clip counts as its own patient
    patient_id: Mapped[str | None] = mapped_column(String(200))
    image_prior_asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assets.id"))
    motion_asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assets.id"))

    dataset: Mapped[Dataset] = relationship(back_populates="clips")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("project_id", "idempotency_key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id"))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.queued, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(BigInteger)
    sampler: Mapped[dict[str, Any]]
    filter_settings: Mapped[dict[str, Any]]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

    banks_total: Mapped[int] = mapped_column(default=0)
    banks_done: Mapped[int] = mapped_column(default=0)
    clips_total: Mapped[int] = mapped_column(default=0)
    clips_done: Mapped[int] = mapped_column(default=0)
    denoise_step: Mapped[int] = mapped_column(default=0)
    denoise_steps: Mapped[int] = mapped_column(default=0)
    phase: Mapped[JobPhase | None] = mapped_column(_enum(JobPhase, length=32))
    # the batch (1-based) of this delivery's sampling plan being denoised, and how many it has
    batch: Mapped[int] = mapped_column(default=0)
    batches: Mapped[int] = mapped_column(default=0)
    # seconds until sampling ends, from the measured time per denoising step; NULL outside sampling
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    clips_kept: Mapped[int] = mapped_column(default=0)
    # {"semantic": n, "inconsistent": n, "static": n, "duplicate": n}
    dropped_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    band_low: Mapped[float | None] = mapped_column(Float)
    band_high: Mapped[float | None] = mapped_column(Float)
    # what the filter's reference checks ran against (data build, memorised threshold, feature space)
    filter_checks: Mapped[dict[str, Any] | None]
    # stage name -> seconds
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"figures": ..., "reason": ...} of worker.job_quality, written with the filter decisions
    quality: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    deliveries: Mapped[int] = mapped_column(default=0)

    # where the job's events are POSTed (docs/webhooks.md) and which of WEBHOOK_EVENTS; NULL: no webhook
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_events: Mapped[list[Any] | None]

    database_object_key: Mapped[str | None] = mapped_column(Text)
    database_sha256: Mapped[str | None] = mapped_column(String(64))
    database_size_bytes: Mapped[int | None] = mapped_column(BigInteger)

    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # when its latest delivery began: the worker's turns rotate by project, then by job (worker.turns)
    turn_at: Mapped[datetime | None]

    model: Mapped[ModelRecord] = relationship(lazy="joined")
    banks: Mapped[list[Bank]] = relationship(
        back_populates="job", order_by="Bank.index", cascade="all, delete-orphan"
    )


class Bank(Base):
    """One condition bank of a job; a condition left as NULL is dropped at sampling time."""

    __tablename__ = "banks"
    __table_args__ = (UniqueConstraint("job_id", "index"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int]
    class_label: Mapped[str | None] = mapped_column(String(100))
    class_index: Mapped[int | None]
    text: Mapped[str | None] = mapped_column(Text)
    image_prior_asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assets.id"))
    motion_asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assets.id"))
    # the checksums of a deleted asset the bank used: what its clips' provenance keeps of it
    image_prior_sha256: Mapped[str | None] = mapped_column(String(64))
    motion_sha256: Mapped[str | None] = mapped_column(String(64))
    source_clip_id: Mapped[str | None] = mapped_column(String(200))
    samples: Mapped[int]
    status: Mapped[BankStatus] = mapped_column(_enum(BankStatus), default=BankStatus.pending)
    clips_done: Mapped[int] = mapped_column(default=0)

    job: Mapped[Job] = relationship(back_populates="banks")
    image_prior_asset: Mapped[Asset | None] = relationship(foreign_keys=[image_prior_asset_id])
    motion_asset: Mapped[Asset | None] = relationship(foreign_keys=[motion_asset_id])


class Clip(Base):
    """A generated clip; `kept`/`reason` and scores are NULL until the filter has run."""

    __tablename__ = "clips"
    __table_args__ = (UniqueConstraint("job_id", "bank_id", "index_in_bank"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    bank_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    index_in_bank: Mapped[int]
    seed: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    preview_key: Mapped[str | None] = mapped_column(Text)
    kept: Mapped[bool | None] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(20))
    loss: Mapped[float | None] = mapped_column(Float)
    group_threshold: Mapped[float | None] = mapped_column(Float)
    vae_seq: Mapped[float | None] = mapped_column(Float)
    theta: Mapped[float | None] = mapped_column(Float)
    # the filter's checks against the real training data (issue 17); NULL when they did not run
    real_distance: Mapped[float | None] = mapped_column(Float)
    real_clip: Mapped[str | None] = mapped_column(String(200))
    manifold_share: Mapped[float | None] = mapped_column(Float)
    memorised: Mapped[bool | None] = mapped_column(Boolean)
    off_manifold: Mapped[bool | None] = mapped_column(Boolean)
    # how the sampler computed it (device, precision, kernels, library versions); NULL before revision 0002
    execution: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    bank: Mapped[Bank] = relationship(lazy="joined")


class OutboxMessage(Base):
    """A task to enqueue, committed in the same transaction as the rows it refers to."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookStatus(str, enum.Enum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


WEBHOOK_EVENTS = ("started", "progress", "succeeded", "failed", "cancelled")


class WebhookDelivery(Base):
    """One job event for the job's webhook: written in the transaction of the status change it reports (an
    outbox row), then POSTed by a worker's webhook sender until delivered or out of attempts. `body` is the
    exact JSON sent on every attempt; `next_attempt_at` is NULL once delivered or failed."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[WebhookStatus] = mapped_column(_enum(WebhookStatus), default=WebhookStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSecret(Base):
    """A project's webhook signing secret, stored as a random salt only: the secret is derived from it and
    the service's secret key (store.webhook_secrets), so the database alone does not give it away."""

    __tablename__ = "webhook_secrets"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One link of a project's audit hash chain: hash = sha256(prev_hash + canonical JSON)."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("project_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int]
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
