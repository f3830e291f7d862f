"""Every 4xx in FastAPI's shape: `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


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
    400: {"model": ErrorResponse, "description": "the body could not be parsed (not UTF-8, nested too deep)"},
    401: {"model": ErrorResponse, "description": "missing or invalid API key"},
    404: {"model": ErrorResponse, "description": "not found in this project"},
    422: {"model": ErrorResponse, "description": "invalid input; `loc` names the field"},
}


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    # loc/msg/type only: echoing the input back fails on NaN/Infinity (a 500) and reflects what was sent.
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail: object = exc.detail
    if not isinstance(detail, list):
        loc = ["body"] if exc.status_code == 400 else []
        detail = [{"loc": loc, "msg": str(exc.detail), "type": f"http_{exc.status_code}"}]
    return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Framework errors (unparsable bodies, unknown routes, validation) in the same shape as ours."""
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
