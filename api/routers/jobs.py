"""Submitting, listing, inspecting and cancelling jobs; downloading a job's database."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.byte_ranges import object_response
from api.deps import JobsWriteProjectDep, ProjectDep, SessionDep, StateDep
from api.errors import ERROR_RESPONSES, ErrorResponse, field_error, not_found
from api.filter_checks import resolve_filter
from api.job_planning import balanced_samples, select_clips
from api.pagination import decode_cursor, encode_cursor
from api.quotas import JobPlan, check_job_size, check_project_quota
from api.schemas import NUL_FREE, BanksFromIn, ClipOut, DatabaseLink, JobIn, JobOut, JobSummary, Page
from api.views import clip_out, job_out, job_summary
from api.webhook_targets import check_webhook
from store import webhooks
from store.audit import append_event
from store.export import CLIP_FORMATS, ClipFormatName, database_in_format
from store.models import (
    FINISHED_JOB_STATUSES,
    Asset,
    AssetKind,
    Bank,
    Clip,
    Dataset,
    DatasetClip,
    Job,
    JobStatus,
    ModelRecord,
    Project,
    utcnow,
)
from store.outbox import RUN_JOB_TASK, add_message, dispatch_outbox
from store.registry import find_model
from store.webhook_secrets import webhook_secret

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "the job's state does not allow this"}
}


def project_job(session: Session, project: Project, job_id: uuid.UUID, *, for_update: bool = False) -> Job:
    query = select(Job).where(Job.id == job_id, Job.project_id == project.id)
    if for_update:
        query = query.with_for_update(of=Job)
    job = session.scalar(query)
    if job is None:
        raise not_found(["path", "job_id"], "job")
    return job


def _check_asset(
    session: Session, project: Project, asset_id: uuid.UUID | None, kind: AssetKind, loc: list[str | int]
) -> None:
    if asset_id is None:
        return
    # KEY SHARE: a concurrent DELETE of the asset waits for this job's commit (and then refuses), or has
    # committed and the asset is not found here
    locked = select(Asset).where(Asset.id == asset_id).with_for_update(read=True, key_share=True)
    asset = session.scalar(locked)
    if asset is None or asset.project_id != project.id:
        raise field_error(422, loc, f"asset {asset_id} not found in this project")
    if asset.kind != kind:
        raise field_error(422, loc, f"asset {asset_id} is a {asset.kind.value}, expected a {kind.value}")


def _class_index(model: ModelRecord, name: str | None, loc: list[str | int]) -> int | None:
    if name is None:
        return None
    if name not in model.class_names:
        raise field_error(422, loc, f"unknown class {name!r}; model {model.name} has {model.class_names}")
    return model.class_names.index(name)


def _banks_from_request(session: Session, project: Project, model: ModelRecord, body: JobIn) -> list[Bank]:
    assert body.banks is not None
    banks = []
    for i, bank in enumerate(body.banks):
        loc: list[str | int] = ["body", "banks", i]
        given = {
            "class_label": bank.class_label is not None,
            "text": bank.text is not None,
            "image_prior": bank.image_prior_asset is not None,
            "motion_field": bank.motion_asset is not None,
        }
        for condition, present in given.items():
            if present and condition not in model.conditions:
                raise field_error(422, loc, f"model {model.name} does not take the {condition} condition")
        _check_asset(
            session, project, bank.image_prior_asset, AssetKind.image_prior, [*loc, "image_prior_asset"]
        )
        _check_asset(session, project, bank.motion_asset, AssetKind.reference_clip, [*loc, "motion_asset"])
        banks.append(
            Bank(
                index=i,
                class_label=bank.class_label,
                class_index=_class_index(model, bank.class_label, [*loc, "class_label"]),
                text=bank.text,
                image_prior_asset_id=bank.image_prior_asset,
                motion_asset_id=bank.motion_asset,
                samples=bank.samples,
            )
        )
    return banks


def _banks_from_dataset(
    session: Session, project: Project, model: ModelRecord, source: BanksFromIn, seed: int
) -> list[Bank]:
    loc: list[str | int] = ["body", "banks_from"]
    query = select(Dataset).where(Dataset.project_id == project.id)
    try:
        query = query.where(Dataset.id == uuid.UUID(source.dataset))
    except ValueError:
        query = query.where(Dataset.name == source.dataset)
    dataset = session.scalar(query)
    if dataset is None:
        raise field_error(422, [*loc, "dataset"], f"dataset {source.dataset!r} not found in this project")
    classes = source.classes or dataset.class_names
    for name in classes:
        if name not in dataset.class_names:
            raise field_error(
                422, [*loc, "classes"], f"unknown class {name!r}; dataset has {dataset.class_names}"
            )
        _class_index(model, name, [*loc, "classes"])
    by_class: dict[str, list[DatasetClip]] = {name: [] for name in classes}
    for clip in dataset.clips:
        if clip.class_name in by_class:
            by_class[clip.class_name].append(clip)
    by_class = {name: clips for name, clips in by_class.items() if clips}
    if not by_class:
        raise field_error(422, [*loc, "classes"], "no training clips of these classes in the dataset")
    chosen = by_class if source.max_banks is None else select_clips(by_class, source.max_banks, seed)
    plan = None
    if source.balance_to_majority:
        plan = balanced_samples(
            {name: len(clips) for name, clips in by_class.items()},
            source.samples_per_bank,
            {name: len(clips) for name, clips in chosen.items()},
        )
    picked = {clip.id for clips in chosen.values() for clip in clips}
    taken = dict.fromkeys(by_class, 0)
    banks: list[Bank] = []
    for clip in dataset.clips:
        if clip.id not in picked:
            continue
        samples = source.samples_per_bank
        if plan is not None:
            samples = plan[clip.class_name][taken[clip.class_name]]
            taken[clip.class_name] += 1
        if samples == 0:
            continue
        banks.append(
            Bank(
                index=len(banks),
                class_label=clip.class_name,
                class_index=model.class_names.index(clip.class_name),
                text=clip.text if "text" in model.conditions else None,
                image_prior_asset_id=clip.image_prior_asset_id if "image_prior" in model.conditions else None,
                motion_asset_id=clip.motion_asset_id if "motion_field" in model.conditions else None,
                source_clip_id=clip.clip_id,
                samples=samples,
            )
        )
    return banks


def _existing_for_key(session: Session, project: Project, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.project_id == project.id, Job.idempotency_key == key))


def _replay(job: Job, request: dict[str, Any], response: Response) -> JobOut:
    if job.request != request:
        raise field_error(
            409, ["header", "Idempotency-Key"], "this Idempotency-Key was used with a different request body"
        )
    response.status_code = status.HTTP_200_OK
    response.headers["Idempotent-Replayed"] = "true"
    return job_out(job)


@router.post(
    "",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": JobOut, "description": "replayed: the job of this Idempotency-Key"},
        **CONFLICT,
        429: {
            "model": ErrorResponse,
            "description": "a project quota is full (unfinished jobs, queued clip-steps or storage); "
            "Retry-After says when to try again, `msg` names the limit",
        },
    },
)
def submit_job(
    body: JobIn,
    state: StateDep,
    session: SessionDep,
    project: JobsWriteProjectDep,
    response: Response,
    http_request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=200, pattern=NUL_FREE)] = None,
) -> JobOut:
    """Submit a generation job: condition banks (class label, text, image prior asset, motion asset; leave any
    out) or `banks_from` a registered dataset, with the sampler and filter settings. Returns 202 with the job;
    `Idempotency-Key` makes a retried submission return the same job."""
    request = body.model_dump(mode="json")
    if idempotency_key is not None:
        existing = _existing_for_key(session, project, idempotency_key)
        if existing is not None:
            return _replay(existing, request, response)
    model = find_model(session, body.model)
    if model is None:
        known = sorted({name for name in session.scalars(select(ModelRecord.name))})
        raise field_error(422, ["body", "model"], f"unknown model {body.model!r}; registered: {known}")
    seed = body.seed if body.seed is not None else secrets.randbits(31)
    steps = body.sampler.steps
    if body.banks is not None:
        plan = JobPlan(banks=len(body.banks), clips=sum(bank.samples for bank in body.banks), steps=steps)
        check_job_size(state.settings, plan, ["body", "banks"])
        banks = _banks_from_request(session, project, model, body)
    else:
        assert body.banks_from is not None
        banks = _banks_from_dataset(session, project, model, body.banks_from, seed)
        plan = JobPlan(banks=len(banks), clips=sum(bank.samples for bank in banks), steps=steps)
        check_job_size(state.settings, plan, ["body", "banks_from"])
    check_project_quota(session, state.settings, project, model, plan)
    if body.webhook is not None:
        check_webhook(http_request, state.settings, body.webhook)
        webhook_secret(session, project.id, state.signing_secret)
    filter_settings = resolve_filter(session, project.id, model, body.filter)
    job = Job(
        project_id=project.id,
        model_id=model.id,
        status=JobStatus.queued,
        idempotency_key=idempotency_key,
        request=request,
        seed=seed,
        sampler=body.sampler.model_dump(mode="json"),
        filter_settings=filter_settings,
        banks=banks,
        banks_total=plan.banks,
        clips_total=plan.clips,
        denoise_steps=steps,
        dropped_counts={},
        timings={},
        webhook_url=body.webhook.url if body.webhook else None,
        webhook_events=sorted(set(body.webhook.events)) if body.webhook else None,
    )
    session.add(job)
    try:
        session.flush()
        add_message(session, RUN_JOB_TASK, {"job_id": str(job.id)}, job_id=job.id)
        append_event(
            session,
            project.id,
            "job.created",
            {
                "job_id": str(job.id),
                "model": model.name,
                "model_version": model.version,
                "model_checksum": model.checksum,
                "banks": len(banks),
                "clips": job.clips_total,
                "seed": job.seed,
            },
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _existing_for_key(session, project, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, request, response)
    dispatch_outbox(session, state.send_task)
    session.refresh(job)
    return job_out(job)


@router.get("", response_model=Page[JobSummary])
def list_jobs(
    session: SessionDep,
    project: ProjectDep,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[JobSummary]:
    """The project's jobs, newest first (filter with `status`; page with `cursor`)."""
    query = select(Job).where(Job.project_id == project.id)
    if status_ is not None:
        query = query.where(Job.status == status_)
    if cursor is not None:
        created, job_id = decode_cursor(cursor, 2)
        try:
            key = (datetime.fromisoformat(created), uuid.UUID(job_id))
        except (AttributeError, TypeError, ValueError) as exc:
            raise field_error(422, ["query", "cursor"], "malformed cursor") from exc
        query = query.where(tuple_(Job.created_at, Job.id) < key)
    jobs = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    next_cursor = None
    if len(jobs) > limit:
        jobs = jobs[:limit]
        next_cursor = encode_cursor([jobs[-1].created_at.isoformat(), str(jobs[-1].id)])
    return Page[JobSummary](items=[job_summary(job) for job in jobs], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: uuid.UUID, session: SessionDep, project: ProjectDep) -> JobOut:
    """One job: status, progress (banks, clips, denoising step), filter results with the quality figures of
    its clips against the model's registered data build, timings."""
    return job_out(project_job(session, project, job_id))


@router.post(
    "/{job_id}/cancel", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED, responses=CONFLICT
)
def cancel_job(job_id: uuid.UUID, session: SessionDep, project: JobsWriteProjectDep) -> JobOut:
    """Cancel a job: GPU work stops between denoising steps; clips already stored stay."""
    job = project_job(session, project, job_id, for_update=True)
    if job.status in FINISHED_JOB_STATUSES:
        raise field_error(409, ["path", "job_id"], f"job already finished ({job.status.value})", "conflict")
    job.cancel_requested = True
    if job.status == JobStatus.queued:
        job.status = JobStatus.cancelled
        job.finished_at = utcnow()
        webhooks.add_event(session, job, "cancelled")
    append_event(
        session, project.id, "job.cancel_requested", {"job_id": str(job.id), "status": job.status.value}
    )
    session.commit()
    return job_out(job)


@router.get("/{job_id}/clips", response_model=Page[ClipOut])
def list_clips(
    job_id: uuid.UUID,
    session: SessionDep,
    project: ProjectDep,
    state: StateDep,
    kept: bool | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[ClipOut]:
    """The job's clips, kept and dropped, with their filter scores, drop reason and preview URL."""
    job = project_job(session, project, job_id)
    query = select(Clip).join(Bank, Clip.bank_id == Bank.id).where(Clip.job_id == job.id)
    if kept is not None:
        query = query.where(Clip.kept.is_(kept))
    if cursor is not None:
        bank_index, index_in_bank = decode_cursor(cursor, 2)
        if not isinstance(bank_index, int) or not isinstance(index_in_bank, int):
            raise field_error(422, ["query", "cursor"], "malformed cursor")
        query = query.where(tuple_(Bank.index, Clip.index_in_bank) > (bank_index, index_in_bank))
    clips = list(session.scalars(query.order_by(Bank.index, Clip.index_in_bank).limit(limit + 1)))
    next_cursor = None
    if len(clips) > limit:
        clips = clips[:limit]
        next_cursor = encode_cursor([clips[-1].bank.index, clips[-1].index_in_bank])
    expiry = state.settings.presigned_expiry_s
    return Page[ClipOut](
        items=[clip_out(c, state.object_store, expiry) for c in clips], next_cursor=next_cursor
    )


@router.get(
    "/{job_id}/database",
    responses={
        200: {
            "content": {"application/zip": {}},
            "model": DatabaseLink,
            "description": "the ZIP (streamed), or with ?presigned=1 a time-limited URL",
        },
        206: {
            "content": {"application/zip": {}},
            "description": "the ZIP from the `Range` header's offset on",
        },
        416: {"model": ErrorResponse, "description": "`Range` is not one byte range within the ZIP"},
        **CONFLICT,
    },
)
def download_database(
    job_id: uuid.UUID,
    session: SessionDep,
    project: ProjectDep,
    state: StateDep,
    presigned: bool = False,
    format: Annotated[
        ClipFormatName,
        Query(
            description="the clips as lossless NPZ (as stored) or NIfTI-1 (.nii.gz, frames as the last axis)"
        ),
    ] = "npz",
    range_: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    """The filtered database (ZIP: kept clips, manifest CSV, Croissant JSON-LD, provenance); with
    `presigned=1` a time-limited download URL instead. Check it with `ctrlgenaug verify`."""
    job = project_job(session, project, job_id)
    if job.database_object_key is None:
        raise field_error(
            409,
            ["path", "job_id"],
            f"the database is not exported yet (job is {job.status.value})",
            "conflict",
        )
    store = state.object_store
    database = database_in_format(session, store, job, CLIP_FORMATS[format])
    if presigned:
        expiry = state.settings.presigned_expiry_s
        url = store.presigned_get(database.key, expiry)
        if url is not None:
            link = DatabaseLink(url=url, expires_in=expiry, sha256=database.sha256, size_bytes=database.size)
            return Response(link.model_dump_json(), media_type="application/json")
    name = f"ctrlgenaug-{job.id}" + ("" if format == "npz" else f"-{format}")
    headers = {"Content-Disposition": f'attachment; filename="{name}.zip"'}
    if database.sha256:
        headers["X-Content-SHA256"] = database.sha256
    return object_response(
        store,
        database.key,
        size=database.size,
        media_type="application/zip",
        headers=headers,
        range_header=range_,
    )
