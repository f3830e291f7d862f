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
) -> None:
    """Re-filter saved per-clip scores with new settings, without sampling again."""
    from pydantic import ValidationError

    from filter.core import FilterSettings, run_filter
    from filter.scores import load_scores

    given: dict[str, Any] = {
        "alpha": alpha,
        "kmeans_k": kmeans_k,
        "kmeans_seed": kmeans_seed,
        "similarity_threshold": similarity_threshold,
        "scope": None if scope is None else scope.value,
    }
    try:
        settings = FilterSettings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as exc:
        errors = "; ".join(f"--{str(e['loc'][0]).replace('_', '-')}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(errors) from exc
    try:
        loaded = load_scores(scores)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--scores") from exc
    result = run_filter(loaded.group, loaded.loss, loaded.latents, settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.to_json(), indent=1))
    for stage, counts in result.stage_counts().items():
        typer.echo(f"{stage}: {counts['in']} in, {counts['kept']} kept, {counts['dropped']} dropped")
    typer.echo(f"band [{result.band[0]:.6f}, {result.band[1]:.6f}]; wrote {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(filter_app, name="filter")
