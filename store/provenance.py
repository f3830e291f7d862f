"""A clip's provenance record: model, conditions with checksums, seed, sampler, filter, object."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy.orm import Session

from store.models import Asset, Clip, Job

SOFTWARE_NAME = "ctrlgenaug"


def software_version() -> str:
    try:
        return version(SOFTWARE_NAME)
    except PackageNotFoundError:
        return "unknown"


def _asset_record(asset: Asset | None, deleted_sha256: str | None) -> dict[str, Any] | None:
    """The asset's record; of a deleted asset (store.retention) its checksum only."""
    if asset is None:
        return None if deleted_sha256 is None else {"sha256": deleted_sha256, "deleted": True}
    return {
        "asset_id": str(asset.id),
        "sha256": asset.sha256,
        "media_type": asset.media_type,
        "filename": asset.filename,
        "shape": asset.shape,
    }


def clip_provenance(session: Session, clip: Clip) -> dict[str, Any]:
    job = session.get_one(Job, clip.job_id)
    bank = clip.bank
    model = job.model
    return {
        "clip": {
            "id": str(clip.id),
            "object_key": clip.object_key,
            "sha256": clip.sha256,
            "size_bytes": clip.size_bytes,
            "preview_key": clip.preview_key,
            "created_at": clip.created_at.isoformat(),
            "updated_at": clip.updated_at.isoformat(),
        },
        "job": {"id": str(job.id), "seed": job.seed, "created_at": job.created_at.isoformat()},
        "model": {"name": model.name, "version": model.version, "checksum": model.checksum},
        "bank": {
            "index": bank.index,
            "index_in_bank": clip.index_in_bank,
            "source_clip_id": bank.source_clip_id,
        },
        "conditions": {
            "class_label": None
            if bank.class_label is None
            else {"name": bank.class_label, "index": bank.class_index},
            "text": bank.text,
            "image_prior": _asset_record(bank.image_prior_asset, bank.image_prior_sha256),
            "motion": _asset_record(bank.motion_asset, bank.motion_sha256),
        },
        "seed": clip.seed,
        "sampler": job.sampler,
        "execution": clip.execution,
        "filter": {
            "settings": job.filter_settings,
            "band": None if job.band_low is None else [job.band_low, job.band_high],
            "kept": clip.kept,
            "reason": clip.reason,
            "loss": clip.loss,
            "group_threshold": clip.group_threshold,
            "vae_seq": clip.vae_seq,
            "theta": clip.theta,
            # the checks against the model's real training data: the nearest training clip's id, never pixels
            "checks": job.filter_checks,
            "real_distance": clip.real_distance,
            "real_clip": clip.real_clip,
            "manifold_share": clip.manifold_share,
            "memorised": clip.memorised,
            "off_manifold": clip.off_manifold,
        },
        "software": {"name": SOFTWARE_NAME, "version": software_version()},
    }
