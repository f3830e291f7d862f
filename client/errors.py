"""What the client raises: the service's error body as an exception naming the field, or a local problem."""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from api.errors import ErrorItem, ErrorResponse

_LOCATIONS = ("body", "query", "path", "header")


class ClientError(Exception):
    """Any error of the client (the message says what to fix)."""


class MissingSetting(ClientError):
    """The service URL or the API key is not given."""


class DownloadError(ClientError):
    """A downloaded database does not match the checksum the service sent."""


class ApiError(ClientError):
    """The service answered 4xx/5xx; `detail` is its error body (`{"detail": [{loc, msg, type}]}`).

    Args:
        status_code: the HTTP status.
        detail: the error items; `field` names the first one's field without its location
            (`banks_from.samples_per_bank`, `format`, `job_id`).
    """

    def __init__(self, status_code: int, detail: list[ErrorItem]) -> None:
        self.status_code = status_code
        self.detail = detail
        super().__init__("; ".join(f"{_field(item) or 'request'}: {item.msg}" for item in detail))

    @property
    def field(self) -> str | None:
        return _field(self.detail[0]) if self.detail else None

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            detail = ErrorResponse.model_validate_json(response.content).detail
        except ValidationError:
            text = response.text.strip()[:200] or response.reason_phrase
            detail = [ErrorItem(loc=[], msg=text, type=f"http_{response.status_code}")]
        return cls(response.status_code, detail)


def _field(item: ErrorItem) -> str:
    loc = item.loc[1:] if item.loc and item.loc[0] in _LOCATIONS else item.loc
    return ".".join(str(part) for part in loc)


def raise_for_error(response: httpx.Response) -> None:
    """Raise `ApiError` for a 4xx/5xx answer (its body must have been read)."""
    if response.is_error:
        raise ApiError.from_response(response)
