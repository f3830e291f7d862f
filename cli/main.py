"""The `ctrlgenaug` console command: one Typer app, each area registers its own commands."""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(help="Ctrl-GenAug: synthetic medical sequence databases.", no_args_is_help=True)

# Each module exposes `register(app: typer.Typer) -> None`; heavy imports stay inside commands.
_COMMAND_MODULES = (
    "cli.motion",
    "cli.filter",
    "cli.data",
    "cli.train",
    "cli.evaluate",
    "cli.service",
    "cli.jobs",
    "cli.keys",
    "cli.worker",
)

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name != _name:
            raise
        continue
    _module.register(app)


def main() -> None:
    """The console command: usage errors and user errors (bad path, bad URL, missing key, server down) are one
    line on stderr and exit code 2; a bug keeps its traceback."""
    from cli.errors import USER_ERROR_EXIT_CODE, describe

    # the click that typer runs on (its own vendored copy in recent typer releases)
    click = sys.modules[typer.BadParameter.__module__]
    try:
        code = app(standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        typer.echo(f"error: {exc.format_message()}{where}", err=True)
        sys.exit(USER_ERROR_EXIT_CODE)
    except click.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except Exception as exc:
        message = describe(exc)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        sys.exit(USER_ERROR_EXIT_CODE)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
