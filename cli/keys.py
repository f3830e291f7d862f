"""Key and project commands: `keys create|list|revoke|rotate` and `projects retention`."""

from __future__ import annotations

from typing import Annotated

import typer

keys_app = typer.Typer(help="Project API keys and their scopes.", no_args_is_help=True)
projects_app = typer.Typer(help="Project settings.", no_args_is_help=True)

ProjectOption = Annotated[str, typer.Option(help="project name")]
KeyArgument = Annotated[str, typer.Argument(help="the key's id or prefix, as `keys list` shows them")]


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.add_typer(projects_app, name="projects")


def _session():  # type: ignore[no-untyped-def]
    from cli.configuration import checked_settings
    from cli.database import open_session
    from store.settings import get_settings

    return open_session(checked_settings(get_settings))


def _project(session, name: str):  # type: ignore[no-untyped-def]
    from store.keys import find_project

    try:
        return find_project(session, name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--project") from exc


def _key(session, project: str, reference: str):  # type: ignore[no-untyped-def]
    from store.keys import KeyNotFound, find_api_key

    try:
        return find_api_key(session, _project(session, project), reference)
    except KeyNotFound as exc:
        raise typer.BadParameter(str(exc), param_hint="KEY") from exc


@keys_app.command("create", help="Create an API key for a project (the project is created if new).")
def keys_create(
    project: ProjectOption,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="what the key may do: jobs:write, read, audit:read (repeat it, or comma-separated; "
            "default: all three; an auditor key: --scope read,audit:read)"
        ),
    ] = None,
) -> None:
    from store.keys import SCOPES, create_api_key

    scopes = [part.strip() for given in scope or SCOPES for part in given.split(",") if part.strip()]
    with _session() as session:
        try:
            row, key = create_api_key(session, project, scopes)
        except ValueError as exc:
            hint = "--scope" if str(exc).startswith("scope") else "--project"
            raise typer.BadParameter(str(exc), param_hint=hint) from exc
        session.commit()
        typer.echo(
            f"project {project}: key {row.prefix}… ({', '.join(row.scopes)}) created; it is shown once:",
            err=True,
        )
        typer.echo(key)


@keys_app.command("list", help="List a project's keys: id, prefix, scopes, created, revoked.")
def keys_list(project: ProjectOption) -> None:
    from store.keys import list_api_keys

    with _session() as session:
        for row in list_api_keys(session, _project(session, project)):
            revoked = row.revoked_at.isoformat() if row.revoked_at else "active"
            typer.echo(
                f"{row.id}\t{row.prefix}…\t{','.join(row.scopes)}\t{row.created_at.isoformat()}\t{revoked}"
            )


@keys_app.command("revoke", help="Revoke a key: its next request is refused (401).")
def keys_revoke(key: KeyArgument, project: ProjectOption) -> None:
    from store.keys import revoke_api_key

    with _session() as session:
        row = _key(session, project, key)
        try:
            revoke_api_key(session, row)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="KEY") from exc
        session.commit()
        typer.echo(f"key {row.prefix}… revoked")


@keys_app.command("rotate", help="Replace a key by a new one with the same scopes; the old one is revoked.")
def keys_rotate(key: KeyArgument, project: ProjectOption) -> None:
    from store.keys import rotate_api_key

    with _session() as session:
        row = _key(session, project, key)
        try:
            new_row, plaintext = rotate_api_key(session, row)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="KEY") from exc
        session.commit()
        typer.echo(f"key {row.prefix}… revoked; its replacement {new_row.prefix}… is shown once:", err=True)
        typer.echo(plaintext)


@projects_app.command(
    "retention",
    help="Show or set how many days a project's uploaded assets are kept (a worker deletes them).",
)
def projects_retention(
    project: ProjectOption,
    asset_days: Annotated[
        int | None, typer.Option(min=1, help="delete uploaded assets older than this")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="keep uploaded assets until deleted")] = False,
) -> None:
    from store.retention import set_asset_retention

    if off and asset_days is not None:
        raise typer.BadParameter("give --asset-days or --off, not both", param_hint="--asset-days")
    with _session() as session:
        row = _project(session, project)
        if off or asset_days is not None:
            set_asset_retention(session, row, asset_days)
            session.commit()
        days = row.asset_retention_days
        typer.echo(
            f"project {row.name}: uploaded assets kept " + (f"{days} days" if days else "until deleted")
        )
