"""The sequence generator: components, sampling to uint8 clips, save/load, checksum (§3.2-3.4)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler

from generator.conditions import BankConditions, ConditionEncoder, ConditionInputs, MotionInputs
from generator.config import ImageUNetConfig, SequenceUNetConfig
from generator.image_encoder import ImageEncoderConfig, ImagePriorEncoder, ImagePriorProjector
from generator.image_unet import ImageUNet
from generator.model_info import ModelInfo, model_checksum
from generator.sampling import (
    NOISE_SCHEDULE,
    SamplerSettings,
    build_scheduler,
    clip_generators,
    clip_noise,
    denoise,
    unet_denoiser,
)
from generator.sequence_unet import SequenceUNet
from generator.text_encoder import CLIPTextConditioner, TextEncoderConfig
from generator.vae import VAEConfig, build_vae, decode_latents, encode_clips, to_uint8

MODEL_INDEX = "model_index.json"
IMAGE_ENCODER_CONFIG = "image_encoder_config.json"
# Component folder -> (library, class) as diffusers writes them in model_index.json; loading never imports
# what the file names, it checks the file against this table.
COMPONENTS: dict[str, tuple[str, str]] = {
    "vae": ("diffusers", "AutoencoderKL"),
    "unet": ("generator.sequence_unet", "SequenceUNet"),
    "text_encoder": ("generator.text_encoder", "CLIPTextConditioner"),
    "image_encoder": ("generator.image_encoder", "ImagePriorEncoder"),
    "image_projector": ("generator.image_encoder", "ImagePriorProjector"),
    "scheduler": ("diffusers", "DDIMScheduler"),
}


@dataclass(frozen=True)
class PreparedBatch:
    """A batch ready to denoise: its conditions (and the unconditional branch under guidance) and its
    starting noise on the pipeline's device, with the per-clip generators that drew the noise."""

    cond: ConditionInputs
    uncond: ConditionInputs | None
    noise: torch.Tensor
    generators: list[torch.Generator]


def unet_conditions(unet: SequenceUNet) -> tuple[str, ...]:
    """The conditions a sequence UNet was built to take, in `CONDITION_NAMES` order."""
    settings = unet.settings
    flags = {
        "class_label": settings.use_class,
        "text": settings.use_text,
        "image_prior": settings.use_image_prior,
        "motion_field": settings.use_motion,
    }
    return tuple(name for name, used in flags.items() if used)


class CtrlGenAugPipeline:
    """VAE + text encoder + image-prior encoder/projector + sequence UNet + noise schedule + model card."""

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextConditioner | None,
        image_encoder: ImagePriorEncoder | None,
        image_projector: ImagePriorProjector | None,
        unet: SequenceUNet,
        info: ModelInfo,
        noise_schedule: dict[str, Any] | None = None,
        decode_chunk_frames: int = 16,
    ) -> None:
        if decode_chunk_frames < 1:
            raise ValueError(f"decode_chunk_frames must be >= 1, got {decode_chunk_frames}")
        conditions = unet_conditions(unet)
        if set(info.conditions) != set(conditions):
            raise ValueError(
                f"model card conditions {list(info.conditions)} != the UNet's {list(conditions)}"
            )
        settings = unet.settings
        if settings.use_text != (text_encoder is not None):
            raise ValueError("text_encoder must be given exactly when the UNet takes text")
        if settings.use_image_prior != (image_encoder is not None and image_projector is not None):
            raise ValueError(
                "image_encoder and image_projector must be given exactly when the UNet takes image priors"
            )
        self.downsampling = 2 ** (len(vae.config.block_out_channels) - 1)
        if info.height % self.downsampling or info.width % self.downsampling:
            raise ValueError(
                f"model height/width must be multiples of the VAE downsampling {self.downsampling}"
            )
        if unet.motion_encoder is not None and unet.motion_encoder.downsampling != self.downsampling:
            raise ValueError(
                f"motion encoder downsampling {unet.motion_encoder.downsampling} != VAE's {self.downsampling}"
            )
        rows = unet.unet.config.num_class_embeds
        if settings.use_class and rows != info.num_classes + 1:
            raise ValueError(f"UNet has {rows} class rows; the card has {info.num_classes} classes + null")
        self.vae = vae.eval()
        self.text_encoder = None if text_encoder is None else text_encoder.eval()
        self.image_encoder = None if image_encoder is None else image_encoder.eval()
        self.image_projector = None if image_projector is None else image_projector.eval()
        self.unet = unet.eval()
        self.info = info
        unknown = sorted(set(noise_schedule or {}) - set(NOISE_SCHEDULE))
        if unknown:
            raise ValueError(f"noise_schedule has unknown keys {unknown}; known: {sorted(NOISE_SCHEDULE)}")
        self.noise_schedule = {**NOISE_SCHEDULE, **(noise_schedule or {})}
        self.decode_chunk_frames = decode_chunk_frames
        self.model_dir: Path | None = None
        self.conditions = self._condition_encoder()

    def _condition_encoder(self) -> ConditionEncoder:
        motion = None
        if self.unet.settings.use_motion:
            m = self.downsampling if self.unet.settings.use_mfa else None
            motion = MotionInputs(self.info.num_frames, self.info.height, self.info.width, m)
        image_shape = None
        if self.image_encoder is not None and self.image_projector is not None:
            _, height, width = self.image_encoder.embedding_shape
            tokens = ImagePriorProjector.num_tokens(height, width)
            image_shape = (tokens, int(self.image_projector.config.cross_attention_dim))
        return ConditionEncoder(
            encode_text=self._encode_text if self.text_encoder is not None else None,
            encode_image_prior=self._encode_image_prior if self.image_encoder is not None else None,
            image_prior_tokens_shape=image_shape,
            num_classes=self.info.num_classes if self.unet.settings.use_class else None,
            motion=motion,
        )

    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        assert self.text_encoder is not None
        return self.text_encoder(self.text_encoder.tokenize(texts))

    def _encode_image_prior(self, images: list[np.ndarray]) -> torch.Tensor:
        assert self.image_encoder is not None and self.image_projector is not None
        embeddings = self.image_encoder(images)
        param = next(self.image_projector.parameters())
        return self.image_projector(embeddings.to(param.device, param.dtype))

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def latent_shape(self) -> tuple[int, int, int, int]:
        """One clip's latents `(C, F, h, w)` as the sequence UNet takes them."""
        channels = int(self.vae.config.latent_channels)
        return (
            channels,
            self.info.num_frames,
            self.info.height // self.downsampling,
            self.info.width // self.downsampling,
        )

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> CtrlGenAugPipeline:
        for module in (self.vae, self.text_encoder, self.image_projector, self.unet):
            if module is None:
                continue
            module.to(device=device)
            if dtype is not None and next(module.parameters()).dtype != dtype:
                module.to(dtype=dtype)
        if self.image_encoder is not None:
            self.image_encoder.to(device=device)
        self.conditions = self._condition_encoder()
        return self

    @torch.no_grad()
    def prepare(
        self, banks: Sequence[BankConditions], seeds: Sequence[int], sampler: SamplerSettings
    ) -> PreparedBatch:
        """Encode a batch's conditions and draw its starting noise, on the device, ready to denoise.

        Touches the condition encoders only, never the UNet: the fast path prepares the next batch on
        another thread while the current one denoises.
        """
        for index, seed in enumerate(seeds):
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
                raise ValueError(f"seeds[{index}] must be an integer in [0, 2**63), got {seed!r}")
        cond = self.conditions.encode(banks, seeds)
        guided = [name for name in sampler.guided if name in self.info.conditions]
        uncond = None
        if guided and sampler.guidance_scale != 1.0:
            uncond = self.conditions.unconditional(cond, guided).to(self.device, self.dtype)
        generators = clip_generators(seeds)
        noise = clip_noise(generators, self.latent_shape).to(self.device)
        return PreparedBatch(cond.to(self.device, self.dtype), uncond, noise, generators)

    @torch.no_grad()
    def denoise_prepared(
        self,
        batch: PreparedBatch,
        sampler: SamplerSettings,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        autocast: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Denoised float32 latents `(N, C, F, h, w)` of a prepared batch."""
        return denoise(
            unet_denoiser(self.unet),
            build_scheduler(sampler, self.noise_schedule),
            batch.noise,
            batch.cond,
            batch.uncond,
            sampler,
            batch.generators,
            progress=progress,
            should_cancel=should_cancel,
            autocast=autocast,
        )

    def sample_latents(
        self,
        banks: Sequence[BankConditions],
        seeds: Sequence[int],
        sampler: SamplerSettings,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        autocast: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Denoised float32 latents `(N, C, F, h, w)`; clip i from `banks[i]` and `torch.Generator(seeds[i])`.

        `autocast` (`torch.bfloat16` / `torch.float16`) runs the networks in mixed precision.
        """
        batch = self.prepare(banks, seeds, sampler)
        return self.denoise_prepared(batch, sampler, progress, should_cancel, autocast)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, autocast: torch.dtype | None = None) -> np.ndarray:
        """Latents `(N, C, F, h, w)` -> uint8 clips `(N, F, H, W)`, `decode_chunk_frames` frames at a time."""
        with torch.autocast(self.device.type, dtype=autocast, enabled=autocast is not None):
            pixels = decode_latents(self.vae, latents.permute(0, 2, 1, 3, 4), self.decode_chunk_frames)
        return to_uint8(pixels)

    def sample(
        self,
        banks: Sequence[BankConditions],
        seeds: Sequence[int],
        sampler: SamplerSettings,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        autocast: torch.dtype | None = None,
    ) -> np.ndarray:
        """uint8 clips `(len(seeds), F, H, W)`; raises `SamplingCancelled` once `should_cancel()` is true.

        `autocast` (`torch.bfloat16` / `torch.float16`) runs the UNet and the VAE decoder in mixed precision.
        """
        latents = self.sample_latents(banks, seeds, sampler, progress, should_cancel, autocast)
        return self.decode(latents, autocast)

    def encode_latents(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 clips `(N, F, H, W)` -> VAE posterior mean x scaling `(N, F, C, h, w)`, chunked."""
        return encode_clips(self.vae, clips, self.decode_chunk_frames)

    def save_pretrained(self, model_dir: str | Path) -> None:
        """Diffusers-style folders (safetensors only) + `model_index.json` + `ctrlgenaug_model.json`.

        Other folders already there (e.g. `classifier/`) are left alone.
        """
        root = Path(model_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(root / "vae", safe_serialization=True)
        self.unet.save_pretrained(root / "unet", safe_serialization=True)
        components = ["vae", "unet", "scheduler"]
        if self.text_encoder is not None:
            self.text_encoder.save_pretrained(root / "text_encoder")
            components.append("text_encoder")
        if self.image_encoder is not None and self.image_projector is not None:
            (root / "image_encoder").mkdir(exist_ok=True)
            encoder_card = {
                "config": asdict(replace(self.image_encoder.config, cache_dir=None)),
                "identity": self.image_encoder.identity,
            }
            (root / "image_encoder" / IMAGE_ENCODER_CONFIG).write_text(
                json.dumps(encoder_card, indent=2) + "\n"
            )
            self.image_projector.save_pretrained(root / "image_projector", safe_serialization=True)
            components += ["image_encoder", "image_projector"]
        DDIMScheduler.from_config(self.noise_schedule).save_pretrained(root / "scheduler")
        for name in ("vae", "unet", "image_projector"):
            if name in components:
                _drop_load_path(root / name / "config.json")
        index: dict[str, Any] = {
            "_class_name": type(self).__name__,
            "_diffusers_version": diffusers.__version__,
            "decode_chunk_frames": self.decode_chunk_frames,
        }
        index.update({name: list(COMPONENTS[name]) for name in sorted(components)})
        (root / MODEL_INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        self.info.save(root)
        self.model_dir = root

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        decode_chunk_frames: int | None = None,
        image_embedding_cache_dir: str | None = None,
    ) -> CtrlGenAugPipeline:
        """Load a saved model directory from the local disk (nothing is downloaded)."""
        root = Path(model_dir)
        index_path = root / MODEL_INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path} not found: not a Ctrl-GenAug model directory")
        index = json.loads(index_path.read_text())
        for name, entry in index.items():
            if name.startswith("_") or name == "decode_chunk_frames":
                continue
            if name not in COMPONENTS or tuple(entry) != COMPONENTS[name]:
                raise ValueError(f"{MODEL_INDEX}: unknown component {name!r}: {entry!r}")
        for name in ("vae", "unet", "scheduler"):
            if name not in index:
                raise ValueError(f"{MODEL_INDEX}: component {name!r} is missing")
        info = ModelInfo.load(root)
        vae = AutoencoderKL.from_pretrained(root / "vae", local_files_only=True, torch_dtype=dtype)
        unet = SequenceUNet.from_pretrained(root / "unet", local_files_only=True, torch_dtype=dtype)
        text_encoder = None
        if "text_encoder" in index:
            text_encoder = CLIPTextConditioner.from_pretrained(root / "text_encoder")
        image_encoder = image_projector = None
        if "image_encoder" in index:
            card = json.loads((root / "image_encoder" / IMAGE_ENCODER_CONFIG).read_text())
            encoder_config = ImageEncoderConfig(**{**card["config"], "cache_dir": image_embedding_cache_dir})
            image_encoder = ImagePriorEncoder(encoder_config)
            if image_encoder.identity != card["identity"]:
                raise ValueError(
                    f"image encoder backbone {image_encoder.identity} is not the saved {card['identity']}"
                )
            image_projector = ImagePriorProjector.from_pretrained(
                root / "image_projector", local_files_only=True, torch_dtype=dtype
            )
        schedule = DDIMScheduler.load_config(root / "scheduler")
        pipeline = cls(
            vae,
            text_encoder,
            image_encoder,
            image_projector,
            unet,
            info,
            noise_schedule={key: schedule[key] for key in NOISE_SCHEDULE if key in schedule},
            decode_chunk_frames=decode_chunk_frames or int(index.get("decode_chunk_frames", 16)),
        )
        pipeline.model_dir = root
        return pipeline.to(device, dtype)

    def checksum(self) -> str:
        """The model checksum of the directory this pipeline was loaded from or saved to."""
        if self.model_dir is None:
            raise ValueError("checksum needs a model directory: save_pretrained or from_pretrained first")
        return model_checksum(self.model_dir)


def _drop_load_path(config_path: Path) -> None:
    """diffusers records where a model was loaded from (`_name_or_path`) in the config it saves; the same
    weights must give the same files (and model checksum) wherever they were loaded from."""
    config = json.loads(config_path.read_text())
    if config.pop("_name_or_path", None) is not None:
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


@torch.no_grad()
def _randomise_identity_layers(unet: SequenceUNet, generator: torch.Generator) -> None:
    """Stage-2 layers start as identities (zero output projections, zero MFA gates, zero motion weights);
    give them small random values so that a test model responds to every condition, as a trained one does."""
    for param in unet.trainable_parameters_stage2():
        if not bool(param.eq(0).all()):
            continue
        if param.ndim == 0:
            param.fill_(0.5)
        else:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)


def build_tiny_pipeline(
    num_classes: int = 3, seed: int = 0, num_frames: int = 8, size: int = 32
) -> CtrlGenAugPipeline:
    """A small, seeded, randomly initialised pipeline for tests and demos: 8 frames of 32x32 or 64x64."""
    if size % 8:
        raise ValueError(f"size must be a multiple of 8 (the VAE downsampling), got {size}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = build_vae(VAEConfig.tiny())
        text_encoder = CLIPTextConditioner(TextEncoderConfig.tiny())
        image_encoder = ImagePriorEncoder(
            ImageEncoderConfig(backbone="tiny", tiny_image_size=32, tiny_seed=seed)
        )
        image_projector = ImagePriorProjector(
            embedding_channels=image_encoder.embedding_shape[0], cross_attention_dim=text_encoder.width
        )
        unet_config = replace(
            ImageUNetConfig.tiny(num_classes), sample_size=size // 8, cross_attention_dim=text_encoder.width
        )
        unet = SequenceUNet.from_image_unet(ImageUNet.build(unet_config), SequenceUNetConfig.tiny())
        _randomise_identity_layers(unet, torch.Generator().manual_seed(seed))
    info = ModelInfo(
        name="tiny-ctrlgenaug",
        version=f"0.0.0+seed{seed}",
        class_names=tuple(f"class_{i}" for i in range(num_classes)),
        num_frames=num_frames,
        height=size,
        width=size,
        conditions=unet_conditions(unet),
    )
    return CtrlGenAugPipeline(
        vae, text_encoder, image_encoder, image_projector, unet, info, decode_chunk_frames=4
    )
