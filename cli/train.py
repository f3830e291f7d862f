"""`ctrlgenaug train vae|text|image|sequence|classifier --config C.yaml` and `train assemble`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

train_app = typer.Typer(
    help="Train the generator's stages and the filter's classifier; assemble a model.", no_args_is_help=True
)

CONFIG_OPTION = typer.Option(
    ..., "--config", "-c", exists=True, dir_okay=False, help="run config (.yaml/.toml)"
)
RESUME_OPTION = typer.Option(False, "--resume", help="continue from the latest checkpoint in output_dir")
RESUME_FROM_OPTION = typer.Option(
    None, "--resume-from", exists=True, file_okay=False, help="continue from this checkpoint folder"
)
DEVICE_OPTION = typer.Option(
    None, "--device", envvar="CTRLGENAUG_TRAIN_DEVICE", help="override the config's device: auto, cpu or cuda"
)


def _load(stage: str, config: Path, device: str | None) -> Any:
    from training.config import ConfigError, load_config

    try:
        loaded = load_config(config, stage=stage)
        if device is not None:
            loaded = type(loaded).model_validate({**loaded.model_dump(), "device": device})
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    except ValueError as exc:
        raise typer.BadParameter(f"device: {exc}", param_hint="--device") from exc
    return loaded


def _run_stage(stage: str, config: Path, resume: bool, resume_from: Path | None, device: str | None) -> None:
    from training.config import ConfigError
    from training.stages import run_stage

    loaded = _load(stage, config, device)
    try:
        result = run_stage(loaded, resume=resume_from if resume_from is not None else resume)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    typer.echo(
        f"{stage}: {result.steps} steps in {result.seconds:.1f} s, last loss {result.last_loss:.4f}; "
        f"trained component(s) in {result.final_dir}"
    )


@train_app.command("vae")
def vae(
    config: Path = CONFIG_OPTION,
    resume: bool = RESUME_OPTION,
    resume_from: Path | None = RESUME_FROM_OPTION,
    device: str | None = DEVICE_OPTION,
) -> None:
    """The 1-channel KL autoencoder (L1 + KL, + LPIPS with local weights)."""
    _run_stage("vae", config, resume, resume_from, device)


@train_app.command("text")
def text(
    config: Path = CONFIG_OPTION,
    resume: bool = RESUME_OPTION,
    resume_from: Path | None = RESUME_FROM_OPTION,
    device: str | None = DEVICE_OPTION,
) -> None:
    """Contrastive fine-tuning of the CLIP text/image towers on the dataset's (frame, text) pairs."""
    _run_stage("text", config, resume, resume_from, device)


@train_app.command("image")
def image(
    config: Path = CONFIG_OPTION,
    resume: bool = RESUME_OPTION,
    resume_from: Path | None = RESUME_FROM_OPTION,
    device: str | None = DEVICE_OPTION,
) -> None:
    """Stage 1: the 2D conditional LDM (class, text, image prior)."""
    _run_stage("image", config, resume, resume_from, device)


@train_app.command("sequence")
def sequence(
    config: Path = CONFIG_OPTION,
    resume: bool = RESUME_OPTION,
    resume_from: Path | None = RESUME_FROM_OPTION,
    device: str | None = DEVICE_OPTION,
) -> None:
    """Stage 2: the inflated sequence LDM (SA, KA, MFA, motion encoder, cross-attention queries)."""
    _run_stage("sequence", config, resume, resume_from, device)


@train_app.command("classifier")
def classifier(config: Path = CONFIG_OPTION, device: str | None = DEVICE_OPTION) -> None:
    """The real-data classifier of the semantic filter (classify/'s training loop)."""
    _run_stage("classifier", config, False, None, device)


@train_app.command("assemble")
def assemble(
    vae: Path = typer.Option(..., "--vae", exists=True, file_okay=False, help="`train vae` output_dir"),
    text: Path = typer.Option(..., "--text", exists=True, file_okay=False, help="`train text` output_dir"),
    sequence: Path = typer.Option(
        ..., "--sequence", exists=True, file_okay=False, help="`train sequence` output_dir"
    ),
    classifier: Path = typer.Option(
        ..., "--classifier", exists=True, file_okay=False, help="`train classifier` output_dir"
    ),
    out: Path = typer.Option(..., "--out", help="MODEL_DIR to write"),
    name: str = typer.Option(..., "--name", help="model name"),
    version: str = typer.Option(..., "--version", help="model version"),
    image_encoder: str | None = typer.Option(
        None,
        "--image-encoder",
        help="litemedsam | tiny | sam:PATH; must be the backbone stage 1 trained with (default: that one)",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing MODEL_DIR"),
) -> None:
    """Write a model directory (docs/contracts.md layout) from the trained stages."""
    from training.assemble import AssembleError, assemble_model

    try:
        model_dir, checksum = assemble_model(
            vae, text, sequence, classifier, out, name, version, image_encoder, overwrite=overwrite
        )
    except AssembleError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"model {name} {version} written to {model_dir}; checksum {checksum}")


@train_app.command("replace-decoder")
def replace_decoder(
    model: Path = typer.Option(..., "--model", exists=True, file_okay=False, help="assembled MODEL_DIR"),
    vae: Path = typer.Option(
        ...,
        "--vae",
        exists=True,
        file_okay=False,
        help="`train vae` output_dir of a `trainable: decoder` run",
    ),
    version: str = typer.Option(..., "--version", help="the new model version"),
) -> None:
    """Swap in a decoder-only fine-tune of the model's own VAE (same latent space) as a new version."""
    from training.assemble import AssembleError
    from training.assemble import replace_decoder as replace

    try:
        model_dir, checksum = replace(model, vae, version)
    except AssembleError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(
        f"model {model_dir} is now version {version}; checksum {checksum}; "
        "its quality card is gone: run `ctrlgenaug evaluate synthesis` on it"
    )


@train_app.command("report")
def report(
    runs: Path = typer.Option(
        ...,
        "--runs",
        exists=True,
        file_okay=False,
        help="folder holding the vae/text/image/sequence/classifier run folders",
    ),
    model: Path = typer.Option(..., "--model", exists=True, file_okay=False, help="assembled MODEL_DIR"),
    data: Path = typer.Option(..., "--data", exists=True, file_okay=False, help="the DATA_DIR trained on"),
    figures: Path = typer.Option(Path("docs/training"), "--figures", help="where the PNGs go"),
    markdown: Path = typer.Option(
        Path("docs/training.md"), "--markdown", help="page whose demo-run section is rewritten"
    ),
    timings: Path | None = typer.Option(
        None, "--timings", exists=True, dir_okay=False, help="JSON {command: seconds} to quote"
    ),
) -> None:
    """Loss curves, a real-vs-generated grid and the run summary (checksums, steps, losses, times)."""
    import json

    from training.report import write_report

    write_report(runs, model, data, figures, markdown, json.loads(timings.read_text()) if timings else None)
    typer.echo(f"figures in {figures}; summary in {markdown}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
