"""`ctrlgenaug evaluate paradigms`: train a classifier under the paradigms of §4.1 on real (+ synthetic)
clips, test it on the real test split and write report.json, report.md and roc.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer


def _split_names(value: str, option: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter("give at least one name", param_hint=option)
    return names


def _load_real(manifest: Path) -> tuple[Any, Any, list[str]]:
    import numpy as np

    from classify.data import ClipSet
    from ingest.manifest import load_clip, load_manifest

    try:
        records = load_manifest(manifest)
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--real") from exc
    if not records:
        raise typer.BadParameter(f"{manifest} lists no clips", param_hint="--real")
    names: dict[int, str] = {}
    for record in records:
        if names.setdefault(record.class_index, record.class_name) != record.class_name:
            raise typer.BadParameter(f"class_index {record.class_index} has two names", param_hint="--real")
    if sorted(names) != list(range(len(names))):
        raise typer.BadParameter(f"class indices {sorted(names)} are not 0..K-1", param_hint="--real")
    sets = {}
    for split in ("train", "test"):
        chosen = [record for record in records if record.split == split]
        if not chosen:
            raise typer.BadParameter(f"{manifest} has no {split!r} clips", param_hint="--real")
        clips = np.stack([load_clip(manifest.parent, record) for record in chosen])
        sets[split] = ClipSet(clips, np.asarray([record.class_index for record in chosen], np.int64))
    return sets["train"], sets["test"], [names[k] for k in range(len(names))]


def _fvd_extractor(choice: str, result: Any, config: dict[str, Any], classifier: str) -> Any:
    from classify.checkpoint import load_classifier
    from classify.preprocess import ClipNormalization
    from classify.synthesis_report import FeatureExtractor

    if choice == "none":
        return None
    if choice == "baseline":
        paradigm = "baseline" if "baseline" in result.models else next(iter(result.models))
        return FeatureExtractor(
            label=f"{classifier} trained here ({paradigm}); not the Kinetics I3D of published FVD",
            model=result.models[paradigm],
            normalization=ClipNormalization(**config["normalization"]),
            size=config["size"],
        )
    path = Path(choice)
    if path.is_dir():
        model, meta = load_classifier(path)
        return FeatureExtractor(
            label=f"classifier {meta['name']} from {path}; not the Kinetics I3D of published FVD",
            model=model,
            normalization=ClipNormalization(**meta["normalization"]),
            size=meta.get("size"),
        )
    if path.is_file():
        return FeatureExtractor(label=f"I3D TorchScript {path.name}", i3d_path=path)
    raise typer.BadParameter(
        f"{choice!r}: not baseline, none, a classifier folder or a TorchScript file",
        param_hint="--fvd-extractor",
    )


def evaluate(
    real: Path = typer.Option(
        ..., "--real", help="real clip set: ingest's manifest.jsonl (train/test splits)"
    ),
    synthetic: Path | None = typer.Option(
        None, "--synthetic", help="filtered synthetic database (folder or ZIP)"
    ),
    classifier: str = typer.Option("i3d", help="registered classifier name"),
    paradigms: str = typer.Option("baseline,real-finetune,joint-train", help="comma-separated paradigms"),
    epochs: int = typer.Option(100, help="training epochs (Table 1: 100)"),
    pretrain_epochs: int | None = typer.Option(
        None, help="Real-finetune synthetic pretraining epochs (default --epochs)"
    ),
    batch_size: int = typer.Option(8, help="batch size (Table 1: 8)"),
    lr: float = typer.Option(1e-4, help="AdamW learning rate (Table 1: 1e-4)"),
    weight_decay: float = typer.Option(0.01, help="AdamW weight decay"),
    seed: int = typer.Option(0, help="seed of training, sampling and bootstrap"),
    device: str = typer.Option("cpu", help="torch device"),
    augmentation: str = typer.Option(
        "basic", help="basic | elastic | mixup | cutmix | videomix | videomix-temporal"
    ),
    size: int | None = typer.Option(None, help="resize frames to SIZE×SIZE (default: the real clips' size)"),
    tiny: bool = typer.Option(False, help="tiny classifier widths (smoke tests)"),
    pretrained: Path | None = typer.Option(
        None, help="local pretrained classifier weights (.safetensors/.pt)"
    ),
    bootstrap: int = typer.Option(2000, help="bootstrap resamples for the 95% CIs (§4.3: 2,000)"),
    imbalance_classes: str | None = typer.Option(None, help="§4.6: comma-separated class names to skew"),
    imbalance_fraction: float = typer.Option(
        0.25, help="§4.6: fraction of real clips kept in skewed classes"
    ),
    fvd_extractor: str = typer.Option(
        "baseline",
        help="baseline (the classifier trained here) | none | classifier folder | I3D TorchScript file",
    ),
    latents: Path | None = typer.Option(
        None, help="NPZ with `latents` (N,F,...) of the synthetic clips (VAE-Seq)"
    ),
    interpolator: Path | None = typer.Option(
        None, help="TorchScript frame interpolator (Dynamic Smoothness)"
    ),
    interpolator_channels: int = typer.Option(3, help="input channels the interpolator expects"),
    save_classifiers: bool = typer.Option(True, help="save each trained classifier under OUT/classifiers/"),
    out: Path = typer.Option(..., "--out", help="output folder"),
) -> None:
    """Train, test and report (Table 3-style accuracy/AUROC with 95% CIs, Δ and McNemar vs Baseline)."""
    import numpy as np

    from classify.checkpoint import save_classifier
    from classify.evaluation import EvaluationSettings, ImbalanceSettings, run_evaluation
    from classify.paradigms import check_paradigms
    from classify.registry import list_classifiers
    from classify.report import write_report
    from classify.synthesis_metrics import TorchScriptInterpolator
    from classify.synthesis_report import manifest_vae_seq, synthesis_metrics
    from classify.synthetic_db import read_synthetic_db
    from classify.train import TrainSettings

    if classifier not in list_classifiers():
        raise typer.BadParameter(f"choose one of {', '.join(list_classifiers())}", param_hint="--classifier")
    try:
        paradigm_names = check_paradigms(_split_names(paradigms, "--paradigms"))
        train = TrainSettings(
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, device=device
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    real_train, real_test, class_names = _load_real(real)
    database = None
    if synthetic is not None:
        try:
            database = read_synthetic_db(synthetic, class_names)
        except (FileNotFoundError, ValueError) as exc:
            raise typer.BadParameter(str(exc), param_hint="--synthetic") from exc
    elif any(name != "baseline" for name in paradigm_names):
        raise typer.BadParameter(
            "real-finetune and joint-train need a synthetic database", param_hint="--synthetic"
        )
    imbalance = None
    if imbalance_classes is not None:
        unknown = [n for n in _split_names(imbalance_classes, "--imbalance-classes") if n not in class_names]
        if unknown:
            raise typer.BadParameter(
                f"unknown class(es) {unknown}; classes: {class_names}", param_hint="--imbalance-classes"
            )
        chosen = tuple(class_names.index(n) for n in _split_names(imbalance_classes, "--imbalance-classes"))
        imbalance = ImbalanceSettings(classes=chosen, fraction=imbalance_fraction)
    try:
        settings = EvaluationSettings(
            classifier=classifier,
            paradigms=tuple(paradigm_names),
            train=train,
            pretrain_epochs=pretrain_epochs,
            augmentation=augmentation,
            size=size,
            tiny=tiny,
            pretrained_path=None if pretrained is None else str(pretrained),
            bootstrap_resamples=bootstrap,
            imbalance=imbalance,
        )

        def progress(stage: str) -> Any:
            return lambda epoch, total, loss: typer.echo(f"[{stage}] epoch {epoch}/{total} loss {loss:.4f}")

        result = run_evaluation(
            real_train, real_test, database.clips if database else None, class_names, settings, progress
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if database is not None:
        vae_seq = manifest_vae_seq(database.rows)
        if vae_seq is None and latents is not None:
            with np.load(latents) as npz:
                vae_seq = npz["latents"]
        result.report["synthesis"] = synthesis_metrics(
            real_train.clips,
            database.clips.clips,
            _fvd_extractor(fvd_extractor, result, result.build_config, classifier),
            vae_seq,
            None
            if interpolator is None
            else TorchScriptInterpolator(interpolator, interpolator_channels, device),
            device,
        )
        result.report["data"]["synthetic_unlabelled"] = database.unlabelled
    if save_classifiers:
        for name, model in result.models.items():
            save_classifier(
                out / "classifiers" / name, model.cpu(), classifier, {**result.build_config, "paradigm": name}
            )
    paths = write_report(result.report, out)
    for kind, path in paths.items():
        typer.echo(f"wrote {kind}: {path}")


evaluate_app = typer.Typer(help="Classifier paradigms (§4.1) and synthesis quality.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from cli.evaluate_synthesis import synthesis

    evaluate_app.command("paradigms")(evaluate)
    evaluate_app.command("synthesis")(synthesis)
    app.add_typer(evaluate_app, name="evaluate")
