"""Serving a stored object whole or from a byte offset (HTTP Range, RFC 9110 §14), so a client resumes an
interrupted download where it stopped."""

from __future__ import annotations

import re

from fastapi.responses import StreamingResponse

from api.errors import field_error
from store.objects import ObjectStore

_BYTES_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def requested_start(range_header: str | None, size: int) -> int | None:
    """The first byte a `Range` header asks for (None: the whole object).

    Args:
        range_header: the request's `Range` header, e.g. `bytes=1000-`; one range only.
        size: the object's size in bytes.

    Returns:
        The offset to serve from; a suffix range (`bytes=-N`) is the last N bytes. A range that ends before
        the object does is served to the end (a 206 may carry more than asked, RFC 9110 §15.3.7, and a
        resuming client asks for the rest anyway).

    Raises:
        HTTPException: 416 naming `Range` when the header is not one byte range or starts past the end.
    """
    if range_header is None:
        return None
    match = _BYTES_RANGE.match(range_header.strip())
    if match is None or match.groups() == ("", ""):
        raise field_error(416, ["header", "Range"], "give one byte range, like bytes=1000-", "range")
    first, last = match.groups()
    if first == "":
        return max(size - int(last), 0)
    start = int(first)
    if start >= size or (last and int(last) < start):
        error = field_error(
            416, ["header", "Range"], f"the range starts past the end ({size} bytes)", "range"
        )
        error.headers = {"Content-Range": f"bytes */{size}"}
        raise error
    return start


def object_response(
    store: ObjectStore,
    key: str,
    *,
    size: int,
    media_type: str,
    headers: dict[str, str],
    range_header: str | None,
) -> StreamingResponse:
    """The object as a 200 (whole) or a 206 (from the requested offset on), advertising `Accept-Ranges`."""
    start = requested_start(range_header, size)
    headers = {**headers, "Accept-Ranges": "bytes"}
    if start is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(store.iter_chunks(key), media_type=media_type, headers=headers)
    headers["Content-Length"] = str(size - start)
    headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
    return StreamingResponse(
        store.iter_chunks(key, offset=start), status_code=206, media_type=media_type, headers=headers
    )
