"""Every error in FastAPI's shape: `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


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
    403: {"model": ErrorResponse, "description": "the API key lacks the scope the operation needs"},
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


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with a reference the client gets, nothing of the exception itself sent back."""
    reference = uuid.uuid4().hex[:12]
    logger.error("internal error %s on %s %s", reference, request.method, request.url.path, exc_info=exc)
    msg = f"internal server error (reference {reference}; the service log has the details)"
    return JSONResponse({"detail": [{"loc": [], "msg": msg, "type": "internal_error"}]}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Framework errors (unparsable bodies, unknown routes, validation) and unexpected ones in the same
    shape as ours."""
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)
