"""What a job's database states about itself in croissant.json beyond its records: the privacy and manifold
checks applied (issue 17), its license, publication date and how to cite it."""

from __future__ import annotations

from typing import Any

from store.models import Job
from store.provenance import software_version


def reference_checks(job: Job) -> dict[str, Any]:
    """Whether the memorised (privacy) and off_manifold checks ran and against what: the memorised threshold,
    the feature spaces and the checksum of the model's training data build; never any real pixels."""
    settings = job.filter_settings
    record = job.filter_checks or {}
    return {
        "memorised": {
            "applied": bool(settings.get("memorised")),
            "threshold": record.get("memorised_threshold"),
            "thresholdSource": record.get("threshold_source"),
            "distance": "root-mean-square pixel difference in [0, 1] units between frame-aligned clips at "
            "the "
            "model's size, to the nearest real training clip",
        },
        "offManifold": {
            "applied": bool(settings.get("off_manifold")),
            "minShare": settings.get("manifold_min_share"),
            "featureSpace": record.get("feature_space"),
        },
        "dataBuild": {
            "manifestSha256": record.get("manifest_sha256"),
            "dataset": record.get("dataset"),
            "trainingClips": record.get("training_clips"),
        },
    }


def license_text(job: Job) -> str:
    """The terms the clips come under: the service grants none of its own."""
    model = job.model
    build = (job.filter_checks or {}).get("manifest_sha256")
    source = (
        f"the real data build with manifest SHA-256 {build}" if build else "the model's real training data"
    )
    return (
        f"Synthetic data derived from {source} through the model {model.name} {model.version}: the licenses "
        "and data-use terms of those sources apply; the service adds none."
    )


def date_published(job: Job) -> str:
    """The job's date (not the export's: exporting again must give the same bytes)."""
    return job.created_at.date().isoformat()


def cite_as(job: Job) -> str:
    """A BibTeX entry for the database."""
    model = job.model
    return (
        f"@misc{{ctrlgenaug_job_{job.id.hex[:12]},\n"
        f"  title = {{Synthetic medical sequences of Ctrl-GenAug job {job.id}}},\n"
        f"  howpublished = {{ctrlgenaug {software_version()}, model {model.name} {model.version} "
        f"(checksum {model.checksum}), seed {job.seed}}},\n"
        f"  year = {{{job.created_at.year}}}\n"
        "}"
    )
