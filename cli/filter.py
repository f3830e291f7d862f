"""`ctrlgenaug filter ...`: re-run the noisy synthetic data filter (Algorithm 1) on saved scores."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Any

import typer


class Scope(str, Enum):
    group = "group"
    job = "job"


filter_app = typer.Typer(help="Noisy synthetic data filter (paper §3.5, Algorithm 1).", no_args_is_help=True)


@filter_app.command("rerun")
def rerun(
    scores: Path = typer.Option(..., "--scores", help="S.npz: group (N,), loss (N,), latents (N, F, ...)"),
    out: Path = typer.Option(..., "--out", help="where to write the result JSON"),
    alpha: float | None = typer.Option(None, help="stage 1: keep loss <= alpha * group mean (default 1.0)"),
    kmeans_k: int | None = typer.Option(None, help="stage 2: K-means clusters on VAE-Seq (default 4)"),
    kmeans_seed: int | None = typer.Option(None, help="stage 2: K-means random state (default 0)"),
    similarity_threshold: float | None = typer.Option(
        None, help="stage 3: drop a clip with Θ >= this to a kept clip (default 0.98)"
    ),
    scope: Scope | None = typer.Option(None, help="stage 3: compare in a group or the job (default group)"),
    memorised: bool = typer.Option(
        False,
        help="drop clips closer than --memorised-threshold to a real training clip (before Algorithm 1)",
    ),
    memorised_threshold: float | None = typer.Option(
        None, help="RMS pixel distance in [0, 1] units (the model's quality.json memorisation_threshold)"
    ),
    off_manifold: bool = typer.Option(
        False, help="drop Algorithm 1's survivors whose frames fall off the real k-NN manifold"
    ),
    manifold_min_share: float | None = typer.Option(
        None, help="keep a clip with at least this share of frames on the manifold (default 0.5)"
    ),
) -> None:
    """Re-filter saved per-clip scores with new settings, without sampling again. The reference checks
    need an S.npz scored against real data (k and the feature space are the ones it was scored with)."""
    from pydantic import ValidationError

    from filter.core import FilterSettings, ReferenceSettings, run_filter
    from filter.scores import load_scores

    given: dict[str, Any] = {
        "alpha": alpha,
        "kmeans_k": kmeans_k,
        "kmeans_seed": kmeans_seed,
        "similarity_threshold": similarity_threshold,
        "scope": None if scope is None else scope.value,
    }
    switches: dict[str, Any] = {
        "memorised": memorised,
        "memorised_threshold": memorised_threshold,
        "off_manifold": off_manifold,
        "manifold_min_share": manifold_min_share,
    }
    try:
        settings = FilterSettings(**{name: value for name, value in given.items() if value is not None})
        checks = ReferenceSettings(**{name: value for name, value in switches.items() if value is not None})
    except ValidationError as exc:
        errors = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(errors) from exc
    if checks.memorised and checks.memorised_threshold is None:
        raise typer.BadParameter(
            "--memorised needs --memorised-threshold", param_hint="--memorised-threshold"
        )
    try:
        loaded = load_scores(scores)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--scores") from exc
    if checks.enabled and loaded.reference is None:
        raise typer.BadParameter(
            "--memorised/--off-manifold need scores measured against real data (real_distance, real_clip, "
            "manifold_share)",
            param_hint="--scores",
        )
    if checks.enabled:
        checks = ReferenceSettings(**{**checks.model_dump(), **(loaded.measured_with or {})})
    result = run_filter(loaded.group, loaded.loss, loaded.latents, settings, checks, loaded.reference)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.to_json(), indent=1))
    for stage, counts in result.stage_counts().items():
        typer.echo(f"{stage}: {counts['in']} in, {counts['kept']} kept, {counts['dropped']} dropped")
    typer.echo(f"band [{result.band[0]:.6f}, {result.band[1]:.6f}]; wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(filter_app, name="filter")
