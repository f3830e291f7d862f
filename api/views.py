"""ORM rows → response bodies."""

from __future__ import annotations

from api.schemas import BankOut, ClipOut, FilterResults, JobOut, JobSummary, Progress, WebhookOut
from store.models import Clip, Job
from store.objects import ObjectStore


def _progress(job: Job) -> Progress:
    return Progress(
        banks_total=job.banks_total,
        banks_done=job.banks_done,
        clips_total=job.clips_total,
        clips_done=job.clips_done,
        denoise_step=job.denoise_step,
        denoise_steps=job.denoise_steps,
        phase=job.phase,
        batch=job.batch,
        batches=job.batches,
        eta_seconds=job.eta_seconds,
    )


NOT_MEASURED = "not measured yet: the job's clips have not been filtered"


def _results(job: Job) -> FilterResults:
    band = None if job.band_low is None or job.band_high is None else (job.band_low, job.band_high)
    quality = job.quality or {"figures": None, "reason": NOT_MEASURED}
    return FilterResults(
        clips_kept=job.clips_kept,
        dropped_counts=job.dropped_counts,
        band=band,
        quality=quality["figures"],
        quality_reason=quality["reason"],
        checks=job.filter_checks,
    )


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        status=job.status,
        model=job.model.name,
        model_version=job.model.version,
        seed=job.seed,
        sampler=job.sampler,
        filter=job.filter_settings,
        banks=[BankOut.model_validate(bank) for bank in job.banks],
        progress=_progress(job),
        results=_results(job),
        timings=job.timings,
        error=job.error,
        cancel_requested=job.cancel_requested,
        deliveries=job.deliveries,
        database_ready=job.database_object_key is not None,
        webhook=None
        if job.webhook_url is None
        else WebhookOut(url=job.webhook_url, events=job.webhook_events or []),
        created_at=job.created_at,
        updated_at=job.updated_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def job_summary(job: Job) -> JobSummary:
    return JobSummary(
        id=job.id,
        status=job.status,
        model=job.model.name,
        model_version=job.model.version,
        progress=_progress(job),
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


def clip_fields(clip: Clip, store: ObjectStore, expires_s: int) -> dict[str, object]:
    return {
        "id": clip.id,
        "job_id": clip.job_id,
        "bank_index": clip.bank.index,
        "index_in_bank": clip.index_in_bank,
        "seed": clip.seed,
        "sha256": clip.sha256,
        "size_bytes": clip.size_bytes,
        "kept": clip.kept,
        "reason": clip.reason,
        "loss": clip.loss,
        "group_threshold": clip.group_threshold,
        "vae_seq": clip.vae_seq,
        "theta": clip.theta,
        "real_distance": clip.real_distance,
        "real_clip": clip.real_clip,
        "manifold_share": clip.manifold_share,
        "memorised": clip.memorised,
        "off_manifold": clip.off_manifold,
        "preview_url": store.presigned_get(clip.preview_key, expires_s) if clip.preview_key else None,
        "created_at": clip.created_at,
    }


def clip_out(clip: Clip, store: ObjectStore, expires_s: int) -> ClipOut:
    return ClipOut.model_validate(clip_fields(clip, store, expires_s))
