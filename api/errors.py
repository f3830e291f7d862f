"""Every 4xx in FastAPI's shape: `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import HTTPException
from pydantic import BaseModel


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorItem]


def field_error(
    status_code: int, loc: Sequence[str | int], msg: str, kind: str = "value_error"
) -> HTTPException:
    return HTTPException(status_code, detail=[{"loc": list(loc), "msg": msg, "type": kind}])


def not_found(loc: Sequence[str | int], what: str) -> HTTPException:
    return field_error(404, loc, f"{what} not found", "not_found")


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "missing or invalid API key"},
    404: {"model": ErrorResponse, "description": "not found in this project"},
    422: {"model": ErrorResponse, "description": "invalid input; `loc` names the field"},
}
