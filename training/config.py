"""Run configuration: one YAML/TOML file per training run, validated by pydantic (unknown keys rejected).

Every default is a value of the paper's Table 1 (AdamW lr 1e-4, cosine schedule, 500 warm-up
iterations, T = 1000, 200 epochs, pretraining batch 64, finetuning batch 8).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import tomllib
import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

T = TypeVar("T")


class ConfigError(ValueError):
    """A run configuration that cannot be used; the message names the offending field."""


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OptimizerConfig(StrictModel):
    """AdamW + learning-rate schedule (Table 1)."""

    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(1e-2, ge=0)
    eps: float = Field(1e-8, gt=0)
    schedule: Literal["cosine", "constant_with_warmup", "linear"] = "cosine"
    warmup_steps: int = Field(500, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)


class NoiseScheduleConfig(StrictModel):
    """DDPM forward process of Eq. (1): T = 1000, scaled-linear betas, epsilon prediction (§3.2)."""

    num_train_timesteps: int = Field(1000, gt=0)
    beta_start: float = Field(0.00085, gt=0)
    beta_end: float = Field(0.012, gt=0)
    beta_schedule: Literal["scaled_linear", "linear"] = "scaled_linear"
    prediction_type: Literal["epsilon"] = "epsilon"


class EMAConfig(StrictModel):
    """Exponential moving average of the trained weights (diffusers' `EMAModel`), exported for sampling.

    The paper does not say; this is latent diffusion's usual practice (docs/decisions.md "training").
    With `warmup`, the decay ramps as 1 - (1 + step)^-power up to `decay`, which suits short runs.
    """

    decay: float = Field(0.9999, gt=0, lt=1)
    warmup: bool = True
    power: float = Field(2 / 3, gt=0)


class DataConfig(StrictModel):
    """Which clips of an ingested clip set (`DATA_DIR/manifest.jsonl`) a stage trains on."""

    data_dir: Path
    split: Literal["train", "test", "all"] = "train"
    resolution: int = Field(256, ge=8, description="frames are resized to resolution × resolution")
    num_frames: int = Field(8, ge=1, description="clip length; longer clips give non-overlapping windows")
    domain_tag_field: str | None = Field(
        None, description="manifest field (e.g. `source`) prepended to the text, §4.7"
    )
    domain_tag_scope: Literal["all", "unlabelled"] = "all"
    image_prior_cache_dir: Path | None = Field(
        None, description="where frozen image-prior embeddings are cached; default OUTPUT_DIR/cache"
    )


class RunConfig(StrictModel):
    """Settings every stage shares."""

    output_dir: Path
    data: DataConfig
    seed: int = 0
    batch_size: int = Field(64, ge=1)
    epochs: int = Field(200, ge=1)
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    gradient_accumulation_steps: int = Field(1, ge=1)
    gradient_checkpointing: bool = False
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "no", description="applies only where a CUDA device is used"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(0, ge=0)
    checkpoint_every: int = Field(500, ge=1)
    checkpoints_total_limit: int | None = Field(3, ge=1)
    log_every: int = Field(10, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()


class VAEStageConfig(RunConfig):
    stage: Literal["vae"] = "vae"
    vae: dict[str, Any] = Field(default_factory=dict, description="generator.vae.VAEConfig fields")
    init_from: Path | None = Field(
        None,
        description="local VAE folder to start from: a Stable Diffusion VAE (RGB, converted to 1 channel) "
        "or a 1-channel VAE this project trained (loaded as is)",
    )
    trainable: Literal["all", "decoder"] = Field(
        "all",
        description="decoder: freeze the encoder so the latent space, its scaling factor and every diffusion "
        "model trained on it stay valid (Stable Diffusion's ft-MSE decoder fine-tuning); needs init_from",
    )
    kl_weight: float = Field(1e-6, ge=0)
    perceptual_weights_path: Path | None = Field(
        None, description="local LPIPS state dict (backbone + linear heads); no perceptual loss when unset"
    )
    perceptual_weight: float = Field(1.0, ge=0)
    augment: bool = Field(
        False, description="random flips, gamma, contrast/brightness and inversion of the training frames"
    )


class TextStageConfig(RunConfig):
    stage: Literal["text"] = "text"
    text_encoder: dict[str, Any] = Field(
        default_factory=dict, description="generator.text_encoder.TextEncoderConfig fields"
    )
    init_from: Path | None = Field(
        None, description="a saved text encoder (or open_clip weights) to fine-tune"
    )


class ImageStageConfig(RunConfig):
    stage: Literal["image"] = "image"
    vae_dir: Path
    text_encoder_dir: Path
    image_encoder: dict[str, Any] = Field(
        default_factory=dict, description="generator.image_encoder.ImagePriorEncoder settings"
    )
    unet: dict[str, Any] = Field(
        default_factory=dict, description="generator.image_unet.ImageUNetConfig fields"
    )
    init_from: Path | None = Field(None, description="local Stable Diffusion UNet folder to start from")
    noise: NoiseScheduleConfig = NoiseScheduleConfig()
    ema: EMAConfig | None = Field(EMAConfig(), description="null: export the raw weights")


class SequenceStageConfig(RunConfig):
    stage: Literal["sequence"] = "sequence"
    batch_size: int = Field(8, ge=1)
    image_stage_dir: Path = Field(description="output_dir of the `train image` run")
    sequence_unet: dict[str, Any] = Field(
        default_factory=dict, description="generator.sequence_unet.SequenceUNetConfig fields"
    )
    motion_cache_dir: Path | None = Field(None, description="default DATA_DIR/motion")
    pathway_downsample: int = Field(8, ge=1, description="m of §3.4 (MFA pathways)")
    noise: NoiseScheduleConfig = NoiseScheduleConfig()
    ema: EMAConfig | None = Field(EMAConfig(), description="null: export the raw weights")


class ClassifierStageConfig(StrictModel):
    """The real-data classifier of the semantic filter (Algorithm 1), trained by classify/'s loop (Table 1:
    100 epochs, batch 8, lr 1e-4, cosine schedule)."""

    stage: Literal["classifier"] = "classifier"
    output_dir: Path
    data: DataConfig
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    epochs: int = Field(100, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    architecture: str = Field("i3d", description="a classify.registry name")
    tiny: bool = Field(False, description="the registry's small widths (tests, the demo model)")
    augmentation: Literal["none", "basic"] = Field(
        "basic", description="Table 1's standard augmentation or none"
    )
    classifier: dict[str, Any] = Field(default_factory=dict, description="extra build_classifier arguments")


StageConfig = Annotated[
    VAEStageConfig | TextStageConfig | ImageStageConfig | SequenceStageConfig | ClassifierStageConfig,
    Field(discriminator="stage"),
]
_STAGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(StageConfig)


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        data = tomllib.loads(text)
    elif path.suffix in {".yaml", ".yml"}:
        data = yaml.safe_load(text)
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ConfigError(f"config file {path}: use .yaml, .yml, .toml or .json")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    return data


def describe_validation_error(error: ValidationError, tag: str | None = None) -> str:
    """`field.path: message; ...`, without the stage tag pydantic puts first for a tagged union."""
    lines = []
    for item in error.errors():
        loc = item["loc"][1:] if tag is not None and item["loc"][:1] == (tag,) else item["loc"]
        field = ".".join(str(part) for part in loc) or "(top level)"
        lines.append(f"{field}: {item['msg']}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any], stage: str | None = None, base_dir: Path | None = None) -> Any:
    """Validate a mapping into the stage's config; relative paths resolve against `base_dir`."""
    if stage is not None:
        declared = data.get("stage", stage)
        if declared != stage:
            raise ConfigError(f"stage: the file declares {declared!r} but `train {stage}` was run")
        data = {**data, "stage": stage}
    if "stage" not in data:
        raise ConfigError("stage: missing (one of vae, text, image, sequence, classifier)")
    try:
        config = _STAGE_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, tag=str(data["stage"]))) from exc
    return resolve_paths(config, base_dir) if base_dir is not None else config


def resolve_paths(config: BaseModel, base_dir: Path) -> Any:
    updates: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, Path) and not value.is_absolute():
            updates[name] = (base_dir / value).resolve()
        elif isinstance(value, BaseModel):
            updates[name] = resolve_paths(value, base_dir)
    return config.model_copy(update=updates)


def load_config(path: str | Path, stage: str | None = None) -> Any:
    """Read a run config; relative paths are taken from the current directory (where `make` runs)."""
    path = Path(path)
    return parse_config(_read_mapping(path), stage=stage, base_dir=Path.cwd())


def config_to_dict(config: BaseModel) -> dict[str, Any]:
    return config.model_dump(mode="json")


def build_section(cls: type[T], values: dict[str, Any], section: str) -> T:
    """Instantiate a model-config dataclass from a config section, naming any unknown or bad field."""
    known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
    tuple_fields = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, tuple)}  # type: ignore[arg-type]
    values = {k: tuple(v) if k in tuple_fields and isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}: {exc}") from exc
