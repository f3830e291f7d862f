"""Service commands: `api`, `db upgrade`, `models register`, `datasets register`, `verify`."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Annotated

import typer

db_app = typer.Typer(help="The service database.", no_args_is_help=True)
models_app = typer.Typer(help="Generator models the service can run.", no_args_is_help=True)
datasets_app = typer.Typer(
    help="Real datasets whose training clips condition jobs (banks_from).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("api", help="Serve the REST API (uvicorn).")(serve_api)
    app.command("verify", help="Verify a downloaded database ZIP (checksums, manifest, provenance).")(verify)
    app.add_typer(db_app, name="db")
    app.add_typer(models_app, name="models")
    app.add_typer(datasets_app, name="datasets")


def serve_api(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    import uvicorn

    from cli.configuration import checked_settings
    from cli.database import ensure_migrated
    from store.settings import get_settings

    ensure_migrated(checked_settings(get_settings))
    uvicorn.run("api.main:app_from_environment", factory=True, host=host, port=port, workers=workers)


@db_app.command("upgrade", help="Apply the Alembic migrations (to `head` unless a revision is given).")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    from migrations import upgrade
    from store.settings import get_settings

    upgrade(get_settings().resolved_database_url, revision)
    typer.echo(f"database at {revision}")


def _session():  # type: ignore[no-untyped-def]
    from cli.configuration import checked_settings
    from cli.database import open_session
    from store.settings import get_settings

    return open_session(checked_settings(get_settings))


@models_app.command("register", help="Register a model directory (ctrlgenaug_model.json + components).")
def models_register(path: Annotated[Path, typer.Argument(exists=True, file_okay=False)]) -> None:
    from store.registry import register_model

    with _session() as session:
        try:
            record = register_model(session, path)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="PATH") from exc
        session.commit()
        typer.echo(f"{record.name} {record.version} sha256:{record.checksum}")


@models_app.command("list", help="List registered models.")
def models_list() -> None:
    from sqlalchemy import select

    from store.models import ModelRecord

    with _session() as session:
        for record in session.scalars(
            select(ModelRecord).order_by(ModelRecord.name, ModelRecord.registered_at)
        ):
            typer.echo(f"{record.name}\t{record.version}\t{record.checksum}\t{record.path}")


@datasets_app.command("register", help="Register the TRAINING clips of a data build's manifest.jsonl.")
def datasets_register(
    manifest: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    project: Annotated[str, typer.Option(help="project name")],
    name: Annotated[str | None, typer.Option(help="dataset name (default: the data folder's name)")] = None,
) -> None:
    from api.state import default_motion_extractor
    from store.datasets import ClipBounds, register_dataset
    from store.keys import get_or_create_project
    from store.objects import build_object_store
    from store.settings import get_settings
    from store.unit_of_work import unit_of_work

    settings = get_settings()
    store = build_object_store(settings)
    with _session() as session:
        project_row = get_or_create_project(session, project)
        try:
            with unit_of_work(session, store) as staged:
                dataset = register_dataset(
                    session,
                    staged,
                    project_id=project_row.id,
                    name=name or manifest.resolve().parent.name,
                    manifest_path=manifest,
                    extract_motion=default_motion_extractor,
                    bounds=ClipBounds(
                        max_frames=settings.condition_max_frames,
                        max_side=settings.condition_max_side,
                        max_file_bytes=settings.max_upload_bytes,
                    ),
                )
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="MANIFEST") from exc
        typer.echo(
            f"dataset {dataset.name}: {len(dataset.clips)} training clips, classes {dataset.class_names}"
        )


def verify(
    database: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the database ZIP")],
    api: Annotated[
        str | None, typer.Option(help="service URL, to check every clip against its provenance")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key of the job's project", envvar="CTRLGENAUG_API_KEY")
    ] = None,
) -> None:
    from store.export import verify_database_zip

    lookup = None
    if api is not None:
        if key is None:
            raise typer.BadParameter("--key is needed with --api", param_hint="--key")
        lookup = _provenance_lookup(api, key)
    try:
        report = verify_database_zip(database, lookup)
    except zipfile.BadZipFile as exc:
        raise typer.BadParameter(f"{database} is not a ZIP file ({exc})", param_hint="DATABASE") from exc
    for error in report.errors:
        typer.echo(f"FAIL {error}", err=True)
    if not report.ok:
        raise typer.Exit(1)
    typer.echo(
        f"OK {report.files_checked} files verified"
        + (" against the service" if lookup else "")
        + f", {report.previews_checked} previews hashed"
    )


def _provenance_lookup(api: str, key: str):  # type: ignore[no-untyped-def]
    import httpx

    client = httpx.Client(base_url=api.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=30)
    client.get("/v1/jobs", params={"limit": 1}).raise_for_status()  # the URL, the service and the key

    def lookup(clip_id: str) -> dict | None:
        response = client.get(f"/v1/clips/{clip_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()["provenance"]

    return lookup
