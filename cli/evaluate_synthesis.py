"""`ctrlgenaug evaluate synthesis`: sample a model with conditions from a data build's training clips and
measure the clips against the build's real clips (quality/), into report.json and the model's card."""

from __future__ import annotations

import json
from pathlib import Path

import typer

HEADLINE = (
    ("vae_psnr_db", "VAE PSNR dB"),
    ("coherence_ratio", "coherence gen/real"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("coverage", "coverage"),
    ("accuracy", "real-clf accuracy"),
    ("prior_ssim", "prior SSIM"),
    ("motion_epe", "motion EPE"),
    ("motion_epe_without_motion", "EPE w/o motion"),
    ("memorised_share", "memorised"),
)


def _row(name: str, figures: dict[str, float | None]) -> str:
    cells = [
        f"{'—' if figures.get(key) is None else format(figures[key], '.3g'):>{len(label)}}"
        for key, label in HEADLINE
    ]
    return "  ".join([f"{name:<8}", *cells])


def synthesis(
    model: Path = typer.Option(..., "--model", help="generator model directory"),
    data: Path = typer.Option(..., "--data", help="data build (manifest.jsonl with train/test splits)"),
    banks_per_class: int = typer.Option(2, help="banks per class, each from one training clip"),
    clips_per_bank: int = typer.Option(1, help="clips sampled per bank"),
    sampler: str = typer.Option("dpmsolver++", help="ddim | dpmsolver++ | unipc"),
    steps: int = typer.Option(25, help="denoising steps"),
    guidance: float = typer.Option(7.5, help="classifier-free guidance scale"),
    guided_conditions: str | None = typer.Option(
        None, help="comma-separated conditions guidance pushes on (default: the sampler's default)"
    ),
    seed: int = typer.Option(0, help="seed of the clips (clip i: seed + i) and of the classifier"),
    k: int = typer.Option(3, help="k of the improved precision/recall manifolds"),
    feature_size: int = typer.Option(32, help="precision/recall features: frames resized to SIZE×SIZE"),
    memorisation_quantile: float = typer.Option(
        0.0, help="quantile of real cross-patient nearest distances that counts as memorised (0: the minimum)"
    ),
    motion_ablation: bool = typer.Option(True, help="sample again with the motion condition dropped"),
    classifier: Path | None = typer.Option(
        None, help="classifier folder trained on real clips only (default: train a tiny I3D here)"
    ),
    fvd_extractor: str | None = typer.Option(
        None, help="real-classifier | classifier folder | Kinetics I3D TorchScript file (default: no FVD)"
    ),
    device: str = typer.Option("cpu", help="torch device"),
    out: Path | None = typer.Option(None, "--out", help="write the report JSON here"),
    write_card: bool = typer.Option(
        False, help="write the report as the model's quality.json (changes the model checksum)"
    ),
) -> None:
    """Quality of a model's clips against a real data build, per class and overall (issue 15 §2)."""
    from quality.card import write_quality_card
    from quality.evaluate import QualitySettings, evaluate_synthesis

    try:
        settings = QualitySettings(
            banks_per_class=banks_per_class,
            clips_per_bank=clips_per_bank,
            sampler=sampler,
            steps=steps,
            guidance_scale=guidance,
            guided_conditions=None
            if guided_conditions is None
            else tuple(name.strip() for name in guided_conditions.split(",") if name.strip()),
            seed=seed,
            k=k,
            feature_size=feature_size,
            memorisation_quantile=memorisation_quantile,
            motion_ablation=motion_ablation,
            classifier=classifier,
            fvd_extractor=fvd_extractor,
            device=device,
        )
        report = evaluate_synthesis(
            model, data, settings, progress=lambda message: typer.echo(f"==> {message}")
        )
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo("  ".join([f"{'class':<8}", *(label for _, label in HEADLINE)]))
    for name, figures in {**report.per_class, "overall": report.overall}.items():
        typer.echo(_row(name, figures))
    typer.echo(f"classifier: {report.definitions['classifier']}")
    typer.echo(f"FVD: {report.overall['fvd']} ({report.definitions['fvd_extractor']})")
    typer.echo(f"{report.seconds:.0f} s")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
        typer.echo(f"wrote {out}")
    if write_card:
        typer.echo(f"wrote {write_quality_card(model, report)}")
