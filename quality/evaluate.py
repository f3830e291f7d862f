"""`evaluate_synthesis`: sample clips from a model with conditions taken from a data build's training clips
(§4.1) and measure them against the build's real clips, per class and overall."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classify.synthesis_metrics import frechet_distance
from classify.synthesis_report import FeatureExtractor
from filter.consistency import vae_seq
from generator.conditions import BankConditions
from generator.fast import FastPathSettings, FastSampler
from generator.motion import extract_motion_field
from generator.pipeline import CtrlGenAugPipeline
from generator.sampling import SamplerSettings
from quality.classifier import RealClassifier, load_real_classifier, train_real_classifier
from quality.metrics import (
    clip_distances,
    coverage,
    cross_patient_threshold,
    fit_standardiser,
    frame_coherence,
    frame_features,
    motion_agreement,
    precision_recall,
    psnr,
    ssim,
)
from quality.sources import DataBuild, SourcedBank, load_data_build, training_banks

Progress = Callable[[str], None]
REAL_CLASSIFIER = "real-classifier"
# Figures of every class and of `overall`; one that was not computed (no motion condition, ablation off,
# too few clips for the k-NN manifolds) is None.
FIGURES = (
    "vae_psnr_db",
    "vae_ssim",
    "real_test_accuracy",
    "coherence_generated",
    "coherence_real",
    "coherence_ratio",
    "vae_seq_generated",
    "vae_seq_real",
    "precision",
    "recall",
    "coverage",
    "accuracy",
    "prior_ssim",
    "motion_epe",
    "motion_cosine",
    "motion_epe_without_motion",
    "motion_cosine_without_motion",
    "memorised_share",
    "nearest_training_distance",
    "generated_clips",
)


@dataclass(frozen=True)
class QualitySettings:
    """How `evaluate_synthesis` samples and measures.

    `classifier`: a classify/ checkpoint folder trained on real clips only; None trains a tiny I3D here on the
    build's training clips (`classifier_epochs`). `fvd_extractor`: None (no FVD), `real-classifier` (the
    penultimate features of that classifier), a classifier folder, or a Kinetics I3D TorchScript file.
    `feature_size` and `feature_std_floor` define the precision/recall feature space;
    `memorisation_quantile` picks the cross-patient distance below which a generated clip counts as memorised.
    `guided_conditions`: the conditions classifier-free guidance pushes on (None: `SamplerSettings`' default).
    """

    banks_per_class: int = 2
    clips_per_bank: int = 1
    sampler: str = "dpmsolver++"
    steps: int = 25
    guidance_scale: float = 7.5
    guided_conditions: tuple[str, ...] | None = None
    seed: int = 0
    k: int = 3
    feature_size: int = 32
    feature_std_floor: float = 0.05
    memorisation_quantile: float = 0.0
    motion_ablation: bool = True
    classifier: Path | None = None
    classifier_epochs: int = 30
    fvd_extractor: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("banks_per_class", "clips_per_bank", "k", "feature_size", "classifier_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        try:  # SamplerSettings refuses a bad solver, step count, scale or condition
            _ = self.sampler_settings
        except ValueError as exc:
            raise ValueError(f"sampler settings: {exc}") from exc
        if self.feature_std_floor <= 0:
            raise ValueError(f"feature_std_floor must be > 0, got {self.feature_std_floor}")
        if not 0.0 <= self.memorisation_quantile <= 1.0:
            raise ValueError(f"memorisation_quantile must be in [0, 1], got {self.memorisation_quantile}")

    @property
    def sampler_settings(self) -> SamplerSettings:
        return SamplerSettings(
            name=self.sampler,
            steps=self.steps,
            guidance_scale=self.guidance_scale,
            guided_conditions=self.guided_conditions,
        )

    def feature_space(self) -> str:
        return (
            f"frames resized to {self.feature_size}x{self.feature_size} (bilinear, antialiased), "
            "values in [0, 1], flattened, each dimension standardised with the real training frames' "
            f"mean and standard deviation (deviation floored at {self.feature_std_floor}); "
            f"Euclidean distance; a frame's ball has the radius of its k = {self.k}-th nearest frame of "
            "another clip"
        )

    def to_json(self) -> dict[str, Any]:
        settings = asdict(self)
        settings["classifier"] = None if self.classifier is None else str(self.classifier)
        settings["guided_conditions"] = list(self.sampler_settings.guided)
        return settings


@dataclass
class QualityReport:
    """`FIGURES` per class name and over all classes (`overall`, which adds `fvd` and
    `memorisation_threshold`); `definitions` states what each was measured in."""

    model: dict[str, str]
    data: dict[str, Any]
    settings: dict[str, Any]
    definitions: dict[str, str]
    per_class: dict[str, dict[str, float | None]]
    overall: dict[str, float | None]
    measured_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Generated:
    banks: list[SourcedBank]
    clips: np.ndarray  # (N, F, H, W), clip i from banks[i // clips_per_bank]
    sources: np.ndarray  # (N,) index into the build's training clips
    labels: np.ndarray
    without_motion: np.ndarray | None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _sample(
    pipeline: CtrlGenAugPipeline, build: DataBuild, settings: QualitySettings, progress: Progress
) -> Generated:
    banks = training_banks(build, settings.banks_per_class)
    per_clip = [bank for bank in banks for _ in range(settings.clips_per_bank)]
    seeds = [settings.seed + i for i in range(len(per_clip))]
    sampler = FastSampler(pipeline, FastPathSettings(max_clips_per_batch=len(per_clip)))
    progress(f"sampling {len(per_clip)} clips from {len(banks)} training-clip banks")
    clips = sampler.sample([b.bank for b in per_clip], seeds, settings.sampler_settings)
    without = None
    if settings.motion_ablation and "motion_field" in pipeline.info.conditions:
        progress(f"sampling the same {len(per_clip)} clips (same seeds) with the motion condition dropped")
        dropped = {id(b): BankConditions(b.bank.class_index, b.bank.text, b.bank.image_prior) for b in banks}
        without = sampler.sample([dropped[id(b)] for b in per_clip], seeds, settings.sampler_settings)
    sources = np.asarray([b.source for b in per_clip])
    return Generated(banks, clips, sources, build.train.labels[sources], without)


@torch.no_grad()
def _reconstruct(pipeline: CtrlGenAugPipeline, clips: np.ndarray) -> np.ndarray:
    """The VAE round trip of uint8 clips."""
    return pipeline.decode(pipeline.encode_latents(clips).permute(0, 2, 1, 3, 4))


@torch.no_grad()
def _latents(pipeline: CtrlGenAugPipeline, clips: np.ndarray) -> np.ndarray:
    return pipeline.encode_latents(clips).float().cpu().numpy()


def _classifier(build: DataBuild, settings: QualitySettings, progress: Progress) -> RealClassifier:
    if settings.classifier is not None:
        return load_real_classifier(settings.classifier, settings.device)
    progress("training the real-data classifier on the training split")
    return train_real_classifier(
        build.train.clips,
        build.train.labels,
        len(build.class_names),
        settings.seed,
        settings.classifier_epochs,
        settings.device,
    )


def _classifier_features(classifier: RealClassifier, label: str) -> FeatureExtractor:
    return FeatureExtractor(
        label=f"{label}; not the Kinetics I3D of published FVD",
        model=classifier.model,
        normalization=classifier.normalization,
        size=classifier.size,
    )


def _fvd(
    settings: QualitySettings, classifier: RealClassifier, real: np.ndarray, generated: np.ndarray
) -> tuple[float | None, str]:
    choice = settings.fvd_extractor
    if choice is None:
        return None, "not computed: no feature extractor given"
    if choice == REAL_CLASSIFIER:
        extractor = _classifier_features(classifier, f"penultimate features of the {classifier.label}")
    elif Path(choice).is_dir():
        loaded = load_real_classifier(Path(choice), settings.device)
        extractor = _classifier_features(loaded, loaded.label)
    elif Path(choice).is_file():
        extractor = FeatureExtractor(label=f"I3D TorchScript {Path(choice).name}", i3d_path=Path(choice))
    else:
        raise ValueError(f"fvd_extractor {choice!r}: not {REAL_CLASSIFIER}, a classifier folder or a file")
    real_features = extractor.features(real, settings.device)
    generated_features = extractor.features(generated, settings.device)
    return frechet_distance(real_features, generated_features), extractor.label


@dataclass(frozen=True)
class ClipFigure:
    """One value per clip and the class of each clip."""

    values: np.ndarray
    labels: np.ndarray

    def mean(self, class_index: int | None) -> float | None:
        chosen = self.values if class_index is None else self.values[self.labels == class_index]
        return float(np.mean(chosen)) if chosen.size else None


def _motion_figures(clips: np.ndarray, conditions: list[np.ndarray]) -> np.ndarray:
    """`(N, 2)`: end-point error and cosine of each clip's re-extracted motion against its condition."""
    return np.asarray(
        [motion_agreement(extract_motion_field(c), m) for c, m in zip(clips, conditions, strict=True)]
    )


def _clip_figures(
    pipeline: CtrlGenAugPipeline,
    build: DataBuild,
    generated: Generated,
    classifier: RealClassifier,
    settings: QualitySettings,
    threshold: float,
    progress: Progress,
) -> dict[str, ClipFigure]:
    progress("VAE reconstruction of the held-out test clips")
    test, real, clips = build.test.clips, build.train.clips, generated.clips
    frames = test.shape[1]
    reconstructed = _reconstruct(pipeline, test)
    on_test = {
        "vae_psnr_db": psnr(test, reconstructed).reshape(-1, frames).mean(axis=1),
        "vae_ssim": ssim(test, reconstructed).reshape(-1, frames).mean(axis=1),
        "real_test_accuracy": (classifier.predict(test) == build.test.labels).astype(np.float64),
    }
    on_real = {"coherence_real": frame_coherence(real), "vae_seq_real": vae_seq(_latents(pipeline, real))}
    progress("coherence, VAE-Seq, class accuracy, prior fidelity, motion fidelity, memorisation")
    nearest = clip_distances(clips, real).min(axis=1)
    on_generated = {
        "coherence_generated": frame_coherence(clips),
        "vae_seq_generated": vae_seq(_latents(pipeline, clips)),
        "accuracy": (classifier.predict(clips) == generated.labels).astype(np.float64),
        "prior_ssim": ssim(real[generated.sources, 0], clips[:, 0]),
        "memorised_share": (nearest < threshold).astype(np.float64),
        "nearest_training_distance": nearest,
    }
    if "motion_field" in pipeline.info.conditions:
        conditions = [b.bank.motion_field for b in generated.banks for _ in range(settings.clips_per_bank)]
        with_motion = _motion_figures(clips, conditions)
        on_generated["motion_epe"], on_generated["motion_cosine"] = with_motion[:, 0], with_motion[:, 1]
        if generated.without_motion is not None:
            without = _motion_figures(generated.without_motion, conditions)
            on_generated["motion_epe_without_motion"] = without[:, 0]
            on_generated["motion_cosine_without_motion"] = without[:, 1]
    figures = {name: ClipFigure(v, build.test.labels) for name, v in on_test.items()}
    figures.update({name: ClipFigure(v, build.train.labels) for name, v in on_real.items()})
    figures.update({name: ClipFigure(v, generated.labels) for name, v in on_generated.items()})
    return figures


def manifold_figures(
    real_clips: np.ndarray,
    real_labels: np.ndarray,
    generated_clips: np.ndarray,
    generated_labels: np.ndarray,
    num_classes: int,
    settings: QualitySettings,
) -> dict[int | None, dict[str, float | None]]:
    """Improved precision and recall, and coverage, of generated vs real frames, per class index and overall
    (None), in the feature space of `QualitySettings.feature_space`; None where a class has fewer than two
    clips on a side or no more frames than k."""
    real = frame_features(real_clips, settings.feature_size)
    mean, std = fit_standardiser(real, settings.feature_std_floor)
    real = (real - mean) / std
    fake = (frame_features(generated_clips, settings.feature_size) - mean) / std
    frames = real_clips.shape[1]
    real_labels, fake_labels = np.repeat(real_labels, frames), np.repeat(generated_labels, frames)
    real_clip = np.repeat(np.arange(len(real_clips)), frames)
    fake_clip = np.repeat(np.arange(len(generated_clips)), frames)
    result: dict[int | None, dict[str, float | None]] = {}
    for class_index in (None, *range(num_classes)):
        real_rows = np.ones(len(real), bool) if class_index is None else real_labels == class_index
        fake_rows = np.ones(len(fake), bool) if class_index is None else fake_labels == class_index
        clips = min(len(np.unique(real_clip[real_rows])), len(np.unique(fake_clip[fake_rows])))
        if clips < 2 or min(real_rows.sum(), fake_rows.sum()) <= settings.k:
            result[class_index] = {"precision": None, "recall": None, "coverage": None}
            continue
        groups = real_clip[real_rows], fake_clip[fake_rows]
        precision, recall = precision_recall(real[real_rows], fake[fake_rows], settings.k, *groups)
        covered = coverage(real[real_rows], fake[fake_rows], settings.k, groups[0])
        result[class_index] = {"precision": precision, "recall": recall, "coverage": covered}
    return result


def _definitions(settings: QualitySettings, classifier: RealClassifier, fvd_label: str) -> dict[str, str]:
    return {
        "feature_space": settings.feature_space(),
        "memorisation_distance": (
            "root-mean-square pixel difference in [0, 1] units between frame-aligned clips at the "
            "model's size; a generated clip is memorised when its nearest training clip is closer than the "
            f"{settings.memorisation_quantile:g}-quantile of the distances from each real clip (train and "
            "test) to its nearest real clip of another patient"
        ),
        "coherence": "mean Pearson correlation of consecutive frames; ratio = generated / real training",
        "vae": "PSNR (dB) and SSIM of the VAE round trip (posterior mean) of the held-out test clips",
        "motion": (
            "motion field re-extracted from the generated clip with the H.264 codec path of the "
            "condition (generator.motion.extract_motion_field) vs the conditioning field, frames 1..F-1: "
            "end-point error in pixels and cosine of the flattened fields; *_without_motion: same banks "
            "and seeds, motion condition dropped"
        ),
        "classifier": classifier.label,
        "fvd_extractor": fvd_label,
    }


def evaluate_synthesis(
    model_dir: str | Path,
    data_dir: str | Path,
    settings: QualitySettings | None = None,
    progress: Progress | None = None,
) -> QualityReport:
    """Sample `banks_per_class` x `clips_per_bank` clips per class from `model_dir`, conditioned on training
    clips of the data build at `data_dir`, and measure them (see `QualityReport`)."""
    settings = settings or QualitySettings()
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir, device=settings.device)
    info = pipeline.info
    build = load_data_build(Path(data_dir), list(info.class_names), info.num_frames, info.height, info.width)
    generated = _sample(pipeline, build, settings, say)
    classifier = _classifier(build, settings, say)
    threshold = cross_patient_threshold(
        np.concatenate([build.train.clips, build.test.clips]),
        build.train.patients + build.test.patients,
        settings.memorisation_quantile,
    )
    figures = _clip_figures(pipeline, build, generated, classifier, settings, threshold, say)
    manifold = manifold_figures(
        build.train.clips,
        build.train.labels,
        generated.clips,
        generated.labels,
        len(build.class_names),
        settings,
    )
    say("FVD")
    fvd, fvd_label = _fvd(settings, classifier, build.train.clips, generated.clips)

    def summary(class_index: int | None) -> dict[str, float | None]:
        values: dict[str, float | None] = dict.fromkeys(FIGURES)
        values.update({name: figure.mean(class_index) for name, figure in figures.items()})
        values["coherence_ratio"] = _ratio(values["coherence_generated"], values["coherence_real"])
        values.update(manifold[class_index])
        chosen = (
            generated.labels if class_index is None else generated.labels[generated.labels == class_index]
        )
        values["generated_clips"] = float(chosen.size)
        return values

    data = {
        "data_dir": str(build.data_dir),
        "manifest_sha256": build.manifest_sha256,
        "train_clips": len(build.train.records),
        "test_clips": len(build.test.records),
        "bank_sources": [build.train.records[b.source].clip_id for b in generated.banks],
    }
    return QualityReport(
        model={"name": info.name, "version": info.version},
        data=data,
        settings=settings.to_json(),
        definitions=_definitions(settings, classifier, fvd_label),
        per_class={name: summary(index) for index, name in enumerate(build.class_names)},
        overall={**summary(None), "fvd": fvd, "memorisation_threshold": threshold},
        seconds=round(time.perf_counter() - started, 1),
    )
