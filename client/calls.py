"""The requests both clients send and how they read the answers (no I/O here)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, RootModel

from api.schemas import JobIn, JobOut, ModelOut
from client.errors import raise_for_error

M = TypeVar("M", bound=BaseModel)
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
USER_AGENT = "ctrlgenaug-client"


class ModelList(RootModel[list[ModelOut]]):
    """GET /v1/models's body."""


def client_options(url: str, key: str, timeout_s: float) -> dict[str, Any]:
    """Keyword arguments of `httpx.Client` / `httpx.AsyncClient`."""
    return {
        "base_url": url,
        "headers": {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT},
        "timeout": timeout_s,
    }


def submit_request(job: JobIn | dict[str, Any], idempotency_key: str | None) -> dict[str, Any]:
    """Request keywords of POST /v1/jobs: the body validated as the API's JobIn, and an Idempotency-Key (a
    fresh one unless given), so a retried submit never makes a second job."""
    body = job if isinstance(job, JobIn) else JobIn.model_validate(job)
    key = idempotency_key or str(uuid.uuid4())
    return {"json": body.model_dump(mode="json", exclude_unset=True), "headers": {"Idempotency-Key": key}}


def parsed(model: type[M], response: httpx.Response) -> M:
    raise_for_error(response)
    # by_name: a response model reads its own output (BankOut validates ORM rows through aliases)
    return model.model_validate_json(response.content, by_alias=True, by_name=True)


def is_finished(job: JobOut) -> bool:
    return job.status.value in FINISHED


def asset_upload(path: Path, kind: str) -> dict[str, Any]:
    """Request keywords of POST /v1/assets (the file is read whole: uploads are small conditions)."""
    return {"data": {"kind": kind}, "files": {"file": (path.name, path.read_bytes())}}


def clips_params(kept: bool | None, cursor: str | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit}
    if kept is not None:
        params["kept"] = "true" if kept else "false"
    if cursor is not None:
        params["cursor"] = cursor
    return params
