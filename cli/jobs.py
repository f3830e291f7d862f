"""`ctrlgenaug jobs ...` and `ctrlgenaug assets upload`: a running service driven through the Python client
(CTRLGENAUG_URL / CTRLGENAUG_API_KEY, or --url / --key)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from client import Client

jobs_app = typer.Typer(
    help="Submit, watch, download and cancel jobs on a running service.", no_args_is_help=True
)
assets_app = typer.Typer(help="Condition assets of a running service.", no_args_is_help=True)

UrlOption = Annotated[
    str | None, typer.Option("--url", help="the service (default: CTRLGENAUG_URL)", show_default=False)
]
KeyOption = Annotated[
    str | None,
    typer.Option("--key", help="the project's API key (default: CTRLGENAUG_API_KEY)", show_default=False),
]
_FINISHED_BADLY = ("failed", "cancelled")


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(assets_app, name="assets")


def _status_hint(status: int) -> str:
    if status == 401:
        return "; check --key / CTRLGENAUG_API_KEY"
    if status == 404:
        return " in this key's project"
    return ""


@contextmanager
def _service(url: str | None, key: str | None) -> Iterator[Client]:
    """The client; the client's errors become one `error:` line (the API's field and message)."""
    import httpx

    from cli.errors import UserError
    from client import ApiError, Client, ClientError

    try:
        with Client(url, key) as client:
            yield client
    except ApiError as exc:
        raise UserError(f"{exc} ({exc.status_code}{_status_hint(exc.status_code)})") from exc
    except ClientError as exc:
        raise UserError(str(exc)) from exc
    except httpx.TransportError as exc:
        raise UserError(f"cannot reach the service: {exc}; start it or check --url / CTRLGENAUG_URL") from exc


def _banks_from_job(
    dataset: str,
    model: str | None,
    samples_per_bank: int,
    classes: list[str] | None,
    max_banks: int | None,
    balance_to_majority: bool,
) -> dict[str, Any]:
    from cli.errors import UserError

    if model is None:
        raise UserError("--model: needed with --banks-from")
    source: dict[str, Any] = {"dataset": dataset, "samples_per_bank": samples_per_bank}
    if classes:
        source["classes"] = classes
    if max_banks is not None:
        source["max_banks"] = max_banks
    if balance_to_majority:
        source["balance_to_majority"] = True
    return {"model": model, "banks_from": source}


def _job_file(path: Path) -> dict[str, Any]:
    from cli.errors import UserError

    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a JSON job ({exc})") from exc
    if not isinstance(body, dict):
        raise UserError(f"{path}: a job is a JSON object (the body of POST /v1/jobs)")
    return body


@jobs_app.command(
    "submit", help="Submit a job from a JSON file (POST /v1/jobs's body) or --banks-from DATASET."
)
def submit(
    file: Annotated[
        Path | None,
        typer.Argument(exists=True, dir_okay=False, help="the job as JSON", show_default=False),
    ] = None,
    banks_from: Annotated[
        str | None, typer.Option(help="a registered dataset: one bank per training clip", show_default=False)
    ] = None,
    model: Annotated[str | None, typer.Option(help="model name or name:version", show_default=False)] = None,
    samples_per_bank: Annotated[int, typer.Option(help="clips sampled per bank")] = 1,
    classes: Annotated[
        list[str] | None,
        typer.Option("--class", help="only this class (repeat for more)", show_default=False),
    ] = None,
    max_banks: Annotated[
        int | None, typer.Option(help="at most this many banks, drawn from the seed", show_default=False)
    ] = None,
    balance_to_majority: Annotated[bool, typer.Option(help="top every class up to the majority")] = False,
    sampler: Annotated[
        str | None, typer.Option(help="ddim, dpmsolver++ or unipc", show_default=False)
    ] = None,
    steps: Annotated[int | None, typer.Option(help="denoising steps", show_default=False)] = None,
    seed: Annotated[int | None, typer.Option(help="the job's seed", show_default=False)] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="send this Idempotency-Key (default: a fresh one)", show_default=False)
    ] = None,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    from api.schemas import JobIn
    from cli.errors import UserError

    if (file is None) == (banks_from is None):
        raise UserError("give a job FILE or --banks-from DATASET (one of them)")
    if file is not None:
        body = _job_file(file)
    else:
        assert banks_from is not None
        body = _banks_from_job(banks_from, model, samples_per_bank, classes, max_banks, balance_to_majority)
    overrides = {"name": sampler, "steps": steps}
    if any(value is not None for value in overrides.values()):
        given = body.get("sampler")
        given = given if isinstance(given, dict) else {}
        body["sampler"] = {**given, **{k: v for k, v in overrides.items() if v is not None}}
    if seed is not None:
        body["seed"] = seed
    job_in = JobIn.model_validate(body)
    with _service(url, key) as client:
        job = client.submit(job_in, idempotency_key)
    progress = job.progress
    typer.echo(
        f"job {job.id} {job.status.value}: {progress.banks_total} banks, {progress.clips_total} clips, "
        f"{progress.denoise_steps} steps each",
        err=True,
    )
    typer.echo(str(job.id))


@jobs_app.command(
    "watch", help="Show a job's progress until it finishes (exit 1 when it failed or was cancelled)."
)
def watch(
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    poll: Annotated[float, typer.Option(help="seconds between polls", min=0.2)] = 2.0,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    with _service(url, key) as client:
        job = client.wait(job_id, poll_s=poll)
    results = job.results
    dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(results.dropped_counts.items()))
    line = f"job {job.id} {job.status.value}: {results.clips_kept} of {job.progress.clips_total} clips kept"
    typer.echo(line + (f" (dropped: {dropped})" if dropped else ""))
    if job.error:
        typer.echo(f"error: {job.error}", err=True)
    if job.status.value in _FINISHED_BADLY:
        raise typer.Exit(1)


@jobs_app.command(
    "download", help="Download a job's database (resuming an interrupted download) and verify it."
)
def download(
    job_id: Annotated[str, typer.Argument(metavar="ID")],
    out: Annotated[Path, typer.Option(file_okay=False, help="folder to write the ZIP into")],
    format: Annotated[str, typer.Option(help="the clips as npz (as stored) or nifti (.nii.gz)")] = "npz",
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    with _service(url, key) as client:
        downloaded = client.download_database(job_id, out, clip_format=format)
        report = client.verify(downloaded.path)
    for error in report.errors:
        typer.echo(f"FAIL {error}", err=True)
    if not report.ok:
        raise typer.Exit(1)
    resumed = f", resumed at byte {downloaded.resumed_from}" if downloaded.resumed_from else ""
    typer.echo(
        f"OK {report.files_checked} files verified against the service, {report.previews_checked} previews "
        f"hashed: {downloaded.path} (sha256 {downloaded.sha256}{resumed})"
    )


@jobs_app.command("cancel", help="Cancel a job (GPU work stops between denoising steps).")
def cancel(
    job_id: Annotated[str, typer.Argument(metavar="ID")], url: UrlOption = None, key: KeyOption = None
) -> None:
    with _service(url, key) as client:
        job = client.cancel(job_id)
    pending = (
        "" if job.status.value == "cancelled" else ": cancel requested, it stops between denoising steps"
    )
    typer.echo(f"job {job.id} {job.status.value}{pending}")


@assets_app.command("upload", help="Upload an image prior or a reference clip; prints the asset id.")
def upload(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    kind: Annotated[str, typer.Option(help="image_prior or reference_clip")] = "image_prior",
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    with _service(url, key) as client:
        asset = client.upload_asset(path, kind)
    typer.echo(f"{asset.kind.value} {asset.filename} {list(asset.shape)} sha256:{asset.sha256}", err=True)
    typer.echo(str(asset.id))
