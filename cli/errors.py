"""User errors of the `ctrlgenaug` command: one line naming the problem and its fix, exit code 2."""

from __future__ import annotations

from sqlalchemy.engine import make_url

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """A problem the user fixes (the message says how); printed as one line, never as a traceback."""


def masked_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given
        return url


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


def describe(exc: BaseException) -> str | None:
    """One line for an error the user can fix (None: a bug, which keeps its traceback)."""
    import httpx
    import sqlalchemy.exc
    import urllib3.exceptions
    from minio.error import S3Error
    from pydantic import ValidationError

    from store.settings import get_settings

    if isinstance(exc, UserError):
        return str(exc)
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or exc.title}: "
            + str(e["msg"]).removeprefix("Value error, ")
            for e in exc.errors()
        )
    if isinstance(exc, sqlalchemy.exc.ArgumentError | sqlalchemy.exc.NoSuchModuleError):
        return (
            f"CTRLGENAUG_DATABASE_URL: {_first_line(exc)}; set a URL like postgresql+psycopg://user@host/db"
        )
    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        url = masked_url(get_settings().resolved_database_url)
        return f"cannot use the database {url}: {_first_line(exc)}; start it or set CTRLGENAUG_DATABASE_URL"
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"{_first_line(exc)}; give the service URL like http://127.0.0.1:8000"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach the service: {_first_line(exc)}; start it (`ctrlgenaug up`) or check --api"
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        fix = "check --key (CTRLGENAUG_API_KEY)" if status in (401, 403) else "see the service's log"
        return f"the service answered {status} to {exc.request.url}; {fix}"
    if isinstance(exc, urllib3.exceptions.HTTPError | S3Error):
        endpoint = get_settings().s3_endpoint
        return f"cannot use S3 at {endpoint}: {_first_line(exc)}; start it or check CTRLGENAUG_S3_*"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or _first_line(exc)}"
    return None
