"""What /docs says about each operation: a description and an example request (curl, with `$API` the service
URL and `$KEY` a project key, as in the README), added to the OpenAPI document FastAPI generates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

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
    """The example request of an operation; its description is the route's docstring."""

    example: str
    body_example: dict[str, Any] | None = None


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("GET", "/v1/health"): Operation("curl $API/v1/health"),
    ("GET", "/v1/ready"): Operation("curl $API/v1/ready"),
    ("GET", "/v1/info"): Operation("curl $API/v1/info"),
    ("GET", "/v1/models"): Operation("curl $API/v1/models"),
    ("GET", "/v1/models/{model}"): Operation("curl $API/v1/models/demo:0.4.0"),
    ("GET", "/metrics"): Operation("curl $API/metrics"),
    ("POST", "/v1/assets"): Operation(
        f"curl {AUTH} -F kind=image_prior -F file=@first_frame.png $API/v1/assets"
    ),
    ("GET", "/v1/assets/{asset_id}"): Operation(f"curl {AUTH} $API/v1/assets/$ASSET"),
    ("DELETE", "/v1/assets/{asset_id}"): Operation(f"curl {AUTH} -X DELETE $API/v1/assets/$ASSET"),
    ("DELETE", "/v1/jobs/{job_id}"): Operation(f"curl {AUTH} -X DELETE $API/v1/jobs/$JOB"),
    ("POST", "/v1/jobs"): Operation(
        f"curl {AUTH} -H 'Content-Type: application/json' -d @job.json $API/v1/jobs",
        JOB_EXAMPLE,
    ),
    ("GET", "/v1/jobs"): Operation(f"curl {AUTH} '$API/v1/jobs?status=succeeded&limit=20'"),
    ("GET", "/v1/jobs/{job_id}"): Operation(f"curl {AUTH} $API/v1/jobs/$JOB"),
    ("POST", "/v1/jobs/{job_id}/cancel"): Operation(f"curl {AUTH} -X POST $API/v1/jobs/$JOB/cancel"),
    ("GET", "/v1/jobs/{job_id}/clips"): Operation(f"curl {AUTH} '$API/v1/jobs/$JOB/clips?kept=true'"),
    ("GET", "/v1/jobs/{job_id}/database"): Operation(
        f"curl {AUTH} -o database.zip $API/v1/jobs/$JOB/database"
    ),
    ("GET", "/v1/clips/{clip_id}"): Operation(f"curl {AUTH} $API/v1/clips/$CLIP"),
    ("GET", "/v1/clips/{clip_id}/strips/{kind}"): Operation(
        f"curl {AUTH} -o strip.png $API/v1/clips/$CLIP/strips/frames"
    ),
    ("GET", "/v1/datasets"): Operation(f"curl {AUTH} $API/v1/datasets"),
    ("POST", "/v1/datasets"): Operation(f"curl {AUTH} -F name=demo -F file=@data-build.zip $API/v1/datasets"),
    ("GET", "/v1/audit/events"): Operation(f"curl {AUTH} '$API/v1/audit/events?kind=job.submitted'"),
    ("GET", "/v1/audit/verify"): Operation(f"curl {AUTH} $API/v1/audit/verify"),
    ("GET", "/v1/jobs/{job_id}/webhooks"): Operation(f"curl {AUTH} $API/v1/jobs/$JOB/webhooks"),
    ("GET", "/v1/webhook-secret"): Operation(f"curl {AUTH} $API/v1/webhook-secret"),
    ("POST", "/v1/webhook-secret/rotate"): Operation(f"curl {AUTH} -X POST $API/v1/webhook-secret/rotate"),
    ("GET", "/v1/objects/{key}"): Operation(
        "curl -o clip.npz '$API/v1/objects/jobs/…/clip.npz?expires=…&signature=…'"
    ),
}


def operation_id(route: APIRoute) -> str:
    """The id is the route function's name: `submit_job`, not FastAPI's `submit_job_v1_jobs_post`."""
    return route.name


def install_operation_docs(app: FastAPI) -> None:
    """Every operation of `app`'s OpenAPI document gets its example request after its description (the route
    function's docstring)."""
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
                description = operation.get("description", "")
                operation["description"] = (
                    f"{description}\n\nExample request:\n\n```shell\n{doc.example}\n```"
                )
                operation["x-codeSamples"] = [{"lang": "shell", "label": "curl", "source": doc.example}]
                if doc.body_example is not None:
                    operation["requestBody"]["content"]["application/json"]["example"] = doc.body_example
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
