"""What /docs says about each operation: a description and an example request (curl, with `$API` the service
URL and `$KEY` a project key, as in the README), added to the OpenAPI document FastAPI generates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

AUTH = '-H "Authorization: Bearer $KEY"'
JOB_EXAMPLE: dict[str, Any] = {
    "model": "ctrlgenaug-demo",
    "banks": [
        {"class_label": "US", "text": "apical four-chamber echocardiogram", "samples": 4},
        {"class_label": "CT", "samples": 4},
    ],
    "sampler": {"name": "dpmsolver++", "steps": 20, "guidance_scale": 7.5},
    "seed": 7,
}


@dataclass(frozen=True)
class Operation:
    description: str  # empty: the route's docstring
    example: str
    body_example: dict[str, Any] | None = None


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/v1/health"): Operation("Liveness: the process answers.", "curl $API/v1/health"),
    ("GET", "/v1/ready"): Operation(
        "Readiness: the database, the broker and the object store answer (503 naming the failing check).",
        "curl $API/v1/ready",
    ),
    ("GET", "/v1/info"): Operation(
        "Service name, version, environment and the registered models.", "curl $API/v1/info"
    ),
    ("GET", "/v1/models"): Operation(
        "Registered generator models: classes, frames, frame size and the conditions each accepts.",
        "curl $API/v1/models",
    ),
    ("GET", "/v1/models/{model}"): Operation(
        "One model by id, name (latest version) or name:version, with its quality card: VAE fidelity, "
        "coherence, precision/recall, real-classifier accuracy, prior and motion fidelity, memorisation "
        "per class and overall (`ctrlgenaug evaluate synthesis --write-card`).",
        "curl $API/v1/models/demo:0.3.0",
    ),
    ("GET", "/metrics"): Operation("Prometheus metrics of the API and the job queue.", "curl $API/metrics"),
    ("POST", "/v1/assets"): Operation(
        "Upload a condition: an image prior (`kind=image_prior`: PNG/JPEG/DICOM/NIfTI/NPY, the first frame "
        "or slice) or a reference clip (`kind=reference_clip`: MP4/AVI/DICOM/NIfTI/NPZ, stored as its motion "
        "field). Content-addressed: the same bytes give the same asset (200 instead of 201).",
        f"curl {AUTH} -F kind=image_prior -F file=@first_frame.png $API/v1/assets",
    ),
    ("GET", "/v1/assets/{asset_id}"): Operation(
        "One uploaded asset of the project: kind, checksum, shape.", f"curl {AUTH} $API/v1/assets/$ASSET"
    ),
    ("DELETE", "/v1/assets/{asset_id}"): Operation("", f"curl {AUTH} -X DELETE $API/v1/assets/$ASSET"),
    ("DELETE", "/v1/jobs/{job_id}"): Operation("", f"curl {AUTH} -X DELETE $API/v1/jobs/$JOB"),
    ("POST", "/v1/jobs"): Operation(
        "Submit a generation job: condition banks (class label, text, image prior asset, motion asset; leave "
        "any out) or `banks_from` a registered dataset, with the sampler and filter settings. Returns 202 "
        "with the job; `Idempotency-Key` makes a retried submission return the same job.",
        f"curl {AUTH} -H 'Content-Type: application/json' -d @job.json $API/v1/jobs",
        JOB_EXAMPLE,
    ),
    ("GET", "/v1/jobs"): Operation(
        "The project's jobs, newest first (filter with `status`; page with `cursor`).",
        f"curl {AUTH} '$API/v1/jobs?status=succeeded&limit=20'",
    ),
    ("GET", "/v1/jobs/{job_id}"): Operation(
        "One job: status, progress (banks, clips, denoising step), filter results with the quality figures "
        "of its clips against the model's registered data build, timings.",
        f"curl {AUTH} $API/v1/jobs/$JOB",
    ),
    ("POST", "/v1/jobs/{job_id}/cancel"): Operation(
        "Cancel a job: GPU work stops between denoising steps; clips already stored stay.",
        f"curl {AUTH} -X POST $API/v1/jobs/$JOB/cancel",
    ),
    ("GET", "/v1/jobs/{job_id}/clips"): Operation(
        "The job's clips, kept and dropped, with their filter scores, drop reason and preview URL.",
        f"curl {AUTH} '$API/v1/jobs/$JOB/clips?kept=true'",
    ),
    ("GET", "/v1/jobs/{job_id}/database"): Operation(
        "The filtered database (ZIP: kept clips, manifest CSV, Croissant JSON-LD, provenance); with "
        "`presigned=1` a time-limited download URL instead. Check it with `ctrlgenaug verify`.",
        f"curl {AUTH} -o database.zip $API/v1/jobs/$JOB/database",
    ),
    ("GET", "/v1/clips/{clip_id}"): Operation(
        "One clip with its full provenance: model and checksum, every condition and its checksum, seed, "
        "sampler, filter scores, the device and precision that computed it.",
        f"curl {AUTH} $API/v1/clips/$CLIP",
    ),
    ("GET", "/v1/clips/{clip_id}/strips/{kind}"): Operation(
        "A PNG of frames side by side: the clip's (`frames`), its bank's image prior (`image_prior`) or the "
        "source real training clip of a `banks_from` bank (`source`); 404 naming `kind` when it has none.",
        f"curl {AUTH} -o strip.png $API/v1/clips/$CLIP/strips/frames",
    ),
    ("GET", "/v1/datasets"): Operation(
        "The project's registered datasets (their training clips condition `banks_from` jobs).",
        f"curl {AUTH} $API/v1/datasets",
    ),
    ("POST", "/v1/datasets"): Operation(
        "Register a dataset from a ZIP of a data build (`ctrlgenaug data build`): its TRAINING clips only.",
        f"curl {AUTH} -F name=demo -F file=@data-build.zip $API/v1/datasets",
    ),
    ("GET", "/v1/audit/events"): Operation(
        "The project's audit log (a hash chain), oldest first; filter by `kind`, `job` or `clip`.",
        f"curl {AUTH} '$API/v1/audit/events?kind=job.submitted'",
    ),
    ("GET", "/v1/audit/verify"): Operation(
        "Recompute the audit log's hash chain; names the first event that does not match.",
        f"curl {AUTH} $API/v1/audit/verify",
    ),
    ("GET", "/v1/jobs/{job_id}/webhooks"): Operation(
        "The job's webhook deliveries, oldest first: event, status (pending, delivered, failed), attempts, "
        "the receiver's last status code and error, the next attempt and when it was delivered.",
        f"curl {AUTH} $API/v1/jobs/$JOB/webhooks",
    ),
    ("GET", "/v1/webhook-secret"): Operation(
        "The project's webhook secret (made on first use): verify each delivery's X-CtrlGenAug-Signature, "
        "an HMAC-SHA256 of `<X-CtrlGenAug-Timestamp>.<body>` (docs/webhooks.md).",
        f"curl {AUTH} $API/v1/webhook-secret",
    ),
    ("POST", "/v1/webhook-secret/rotate"): Operation(
        "Replace the project's webhook secret: every delivery attempt from now on is signed with the new one",
        f"curl {AUTH} -X POST $API/v1/webhook-secret/rotate",
    ),
    ("GET", "/v1/objects/{key}"): Operation(
        "A stored object through a signed, expiring URL the API handed out (embedded object store only).",
        "curl -o clip.npz '$API/v1/objects/jobs/…/clip.npz?expires=…&signature=…'",
    ),
}


def install_operation_docs(app: FastAPI) -> None:
    """Every operation of `app`'s OpenAPI document gets its description and example request."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                doc = OPERATIONS.get((method.upper(), path))
                if doc is None:
                    continue
                description = doc.description or operation.get("description", "")
                operation["description"] = (
                    f"{description}\n\nExample request:\n\n```shell\n{doc.example}\n```"
                )
                operation["x-codeSamples"] = [{"lang": "shell", "label": "curl", "source": doc.example}]
                if doc.body_example is not None:
                    operation["requestBody"]["content"]["application/json"]["example"] = doc.body_example
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
