"""The one error type of ingestion: names the input and says what is wrong with it."""

from __future__ import annotations

from pydantic import ValidationError


class IngestError(ValueError):
    """An input that cannot become clips; `str()` reads "<source>: <reason>"."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic errors as one line: "field 'x': message; field 'y': message"."""
    return "; ".join(f"field '{'.'.join(str(p) for p in e['loc']) or '?'}': {e['msg']}" for e in exc.errors())
