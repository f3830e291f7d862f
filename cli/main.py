"""The `ctrlgenaug` console command: one Typer app, each area registers its own commands."""

from __future__ import annotations

import importlib

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


if __name__ == "__main__":
    app()
