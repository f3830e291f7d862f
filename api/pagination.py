"""Opaque cursors for keyset pagination (base64 of the last item's sort key)."""

from __future__ import annotations

import base64
import json
from typing import Any

from api.errors import field_error


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode()


def decode_cursor(cursor: str, length: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise field_error(422, ["query", "cursor"], "malformed cursor") from exc
    if not isinstance(values, list) or len(values) != length:
        raise field_error(422, ["query", "cursor"], "malformed cursor")
    return values
