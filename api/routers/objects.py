"""Downloads through signed, expiring URLs (the local object folder's stand-in for S3 presigned URLs)."""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import StateDep
from api.errors import ErrorResponse, field_error
from api.state import OBJECTS_ROUTE, object_signature
from store.objects import ObjectNotFound

router = APIRouter(tags=["objects"])


@router.get(
    OBJECTS_ROUTE + "/{key:path}",
    response_class=StreamingResponse,
    responses={403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
def signed_download(key: str, expires: int, signature: str, state: StateDep) -> StreamingResponse:
    """A stored object through a signed, expiring URL the API handed out (embedded object store only)."""
    expected = object_signature(state.signing_secret, key, expires)
    # Bytes: compare_digest refuses str with non-ASCII characters (a fuzzed signature made it a 500).
    if not hmac.compare_digest(expected.encode(), signature.encode()) or expires < time.time():
        raise field_error(403, ["query", "signature"], "invalid or expired signature", "forbidden")
    try:
        info = state.object_store.stat(key)
    except (ObjectNotFound, ValueError) as exc:
        raise field_error(404, ["path", "key"], "object not found", "not_found") from exc
    return StreamingResponse(
        state.object_store.iter_chunks(key),
        media_type="application/octet-stream",
        headers={"Content-Length": str(info.size)},
    )
