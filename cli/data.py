"""`ctrlgenaug data ...`: build a labelled clip set from medical files, the packaged demo set, verify one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ingest.build import BuildReport, Progress

data_app = typer.Typer(
    help="Ingest labelled medical sequences into a clip set (manifest + clips).", no_args_is_help=True
)

DEMO_SOURCES_DIR = Path(__file__).resolve().parents[1] / ".cache" / "demo-sources"
_WINDOW_HELP = (
    "'auto' (CT: ct:-1000,400; others: percentile:1,99), 'ct:LOW,HIGH' (HU) or 'percentile:LOW,HIGH'"
)


def _progress_bars() -> Progress:
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="source" if stage == "read" else "clip")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return progress


def _error_text(exc: ValueError) -> str:
    from pydantic import ValidationError

    from ingest.errors import describe_validation_error

    return describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)


def _print_summary(report: BuildReport, out: Path) -> None:
    typer.echo(f"{report.clips} clips from {report.sources_read} sources in {out}")
    typer.echo(f"  per class: {report.clips_per_class}")
    typer.echo(f"  per split: {report.clips_per_split}  patients: {report.patients_per_split}")
    if report.time_split_patients:
        typer.echo(f"  single-patient classes split by time: {', '.join(report.time_split_patients)}")
    typer.echo(f"  motion cache: {report.motion}")
    typer.echo(f"  manifest sha256: {report.manifest_sha256}")
    for item in report.rejected:
        typer.echo(f"  rejected {item['source']}: {item['reason']}", err=True)
    if report.unlabelled:
        typer.echo(
            f"  {len(report.unlabelled)} input files have no label row (listed in report.json)", err=True
        )


@data_app.command("build")
def build(
    inputs: list[Path] = typer.Option(..., "--inputs", help="input folder or file (repeat for several)"),
    labels: Path = typer.Option(..., "--labels", exists=True, dir_okay=False, help="labels .csv or .jsonl"),
    out: Path = typer.Option(..., "--out", help="DATA_DIR to write"),
    frames: int = typer.Option(8, min=1, help="frames (slices) per clip"),
    stride: int = typer.Option(1, min=1, help="take every STRIDE-th frame within a clip"),
    size: int = typer.Option(256, min=8, help="clip frames are SIZE×SIZE"),
    window: str = typer.Option("auto", help=_WINDOW_HELP),
    axis: int = typer.Option(2, min=0, max=2, help="slice axis of volumes, RAS order (2 = axial)"),
    test_fraction: float = typer.Option(0.2, min=0.0, max=0.99, help="share of clips for the test split"),
    seed: int = typer.Option(0, help="seed of the patient split and pathway sampling"),
    motion: bool = typer.Option(True, "--motion/--no-motion", help="cache motion fields (and MFA pathways)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a clip set already in DATA_DIR"),
) -> None:
    """Read DICOM (cine / series folder), NIfTI, MP4/AVI, NPY/NPZ and InVesalius inputs into clips."""
    from ingest.build import BuildSettings, build_dataset

    try:
        settings = BuildSettings(
            frames=frames,
            stride=stride,
            size=size,
            window=window,
            axis=axis,
            test_fraction=test_fraction,
            seed=seed,
            motion=motion,
        )
        progress = _progress_bars()
        report = build_dataset(inputs, labels, out, settings, overwrite=overwrite, progress=progress)
    except ValueError as exc:
        raise typer.BadParameter(_error_text(exc)) from exc
    _print_summary(report, out)
    if report.clips == 0:
        raise typer.Exit(code=1)


@data_app.command("demo")
def demo(
    out: Path = typer.Option(..., "--out", help="DATA_DIR to write"),
    size: int = typer.Option(64, min=8, help="clip frames are SIZE×SIZE"),
    frames: int = typer.Option(8, min=1, help="frames (slices) per clip"),
    sources_dir: Path = typer.Option(
        DEMO_SOURCES_DIR,
        envvar="CTRLGENAUG_DEMO_SOURCES_DIR",
        help="where scripts/fetch_demo_sources.sh unpacked the Debian packages (default: the repository's)",
    ),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="build from the sources found (PyPI's alone: no CT class)"
    ),
    test_fraction: float = typer.Option(0.2, min=0.0, max=0.99, help="share of clips for the test split"),
    seed: int = typer.Option(0, help="seed of the patient split and pathway sampling"),
    motion: bool = typer.Option(True, "--motion/--no-motion", help="cache motion fields (and MFA pathways)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace a clip set already in DATA_DIR"),
) -> None:
    """The demo clip set (US / CT / MR) from real images shipped by PyPI and Debian packages."""
    from ingest.build import BuildSettings
    from ingest.demo import DEMO_SOURCES, build_demo

    missing = [source.origin for source in DEMO_SOURCES if source.locate(sources_dir) is None]
    if missing and not allow_missing:
        raise typer.BadParameter(
            f"demo sources not found in {sources_dir}: {'; '.join(missing)}. Fetch them with "
            "`make demo-sources` (scripts/fetch_demo_sources.sh), point --sources-dir at them, "
            "or pass --allow-missing",
            param_hint="--sources-dir",
        )
    try:
        settings = BuildSettings(
            frames=frames, size=size, test_fraction=test_fraction, seed=seed, motion=motion
        )
        progress = _progress_bars()
        result = build_demo(out, sources_dir, settings, overwrite=overwrite, progress=progress)
    except ValueError as exc:
        raise typer.BadParameter(_error_text(exc)) from exc
    for item in result.skipped:
        typer.echo(
            f"skipped {item['origin']}: {item['reason']} (run scripts/fetch_demo_sources.sh)", err=True
        )
    _print_summary(result.report, out)
    if result.report.clips == 0:
        raise typer.Exit(code=1)


@data_app.command("verify")
def verify(
    data_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="DATA_DIR to check"),
) -> None:
    """Check every clip (and cached motion field) against the SHA-256 in the manifest."""
    from ingest.manifest import MANIFEST_NAME, load_manifest, manifest_checksum, verify_clips

    manifest = data_dir / MANIFEST_NAME
    records = load_manifest(manifest)
    problems = verify_clips(data_dir, records)
    for problem in problems:
        typer.echo(problem, err=True)
    typer.echo(
        f"{len(records)} clips, {len(problems)} problems; manifest sha256 {manifest_checksum(manifest)}"
    )
    if problems:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
