"""Settings checked before a service command starts: a configuration error is one line, not a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from pydantic import ValidationError

T = TypeVar("T")


def checked_settings(factory: Callable[[], T]) -> T:
    """`factory()` (a pydantic-settings class or `get_settings`); exits with code 2 and one line per
    invalid setting when the configuration is refused."""
    try:
        return factory()
    except ValidationError as exc:
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(f"configuration error: {message}", err=True)
        raise typer.Exit(2) from None
