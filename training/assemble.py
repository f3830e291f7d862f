"""`train assemble`: the trained stages -> one model directory (docs/contracts.md layout) + `classifier/`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from training.checkpoint import CONFIG_FILE, FINAL_DIR, METADATA_FILE, read_metadata
from training.config import ConfigError, parse_config

PROVENANCE_FILE = "training_provenance.json"
LATENT_STD_RANGE = (0.8, 1.25)
CLASSIFIER_DIR = "classifier"


class AssembleError(ValueError):
    """The stages do not fit together; the message names the option."""


def _final_config(run_dir: Path, stage: str, option: str) -> Any:
    path = run_dir / FINAL_DIR / CONFIG_FILE
    if not path.is_file():
        raise AssembleError(f"{option}: {run_dir} is not a finished `train {stage}` run ({path} missing)")
    try:
        return parse_config(json.loads(path.read_text()), stage=stage)
    except ConfigError as exc:
        raise AssembleError(f"{option}: {exc}") from exc


def _weights_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.safetensors")):
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _check_same_component(given: Path, trained_with: Path, option: str) -> None:
    """Stage 1/2 were trained on one VAE and one text encoder; the model must ship those very weights."""
    if given.resolve() != trained_with.resolve() and _weights_digest(given) != _weights_digest(trained_with):
        raise AssembleError(
            f"{option}: {given} is not the component the image stage trained with ({trained_with})"
        )


def latent_space_digest(vae_folder: Path) -> str:
    """sha256 of what defines a VAE's latent space: the encoder side's weights and the scaling factor.

    Stages 1 and 2 only ever encode, so a decoder-only fine-tune (`trainable: decoder`) keeps this digest.
    """
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(vae_folder / "diffusion_pytorch_model.safetensors"), framework="pt") as weights:
        for key in sorted(k for k in weights.keys() if k.startswith(("encoder.", "quant_conv."))):
            digest.update(key.encode())
            digest.update(weights.get_tensor(key).numpy().tobytes())
    digest.update(repr(json.loads((vae_folder / CONFIG_FILE).read_text())["scaling_factor"]).encode())
    return digest.hexdigest()


def _check_same_latent_space(given: Path, trained_with: Path, option: str) -> None:
    if latent_space_digest(given) != latent_space_digest(trained_with):
        raise AssembleError(
            f"{option}: {given} encodes to another latent space (encoder weights or scaling factor) than the "
            f"VAE the diffusion stages trained on ({trained_with}); only a decoder-only fine-tune may "
            "replace it"
        )


def write_then_swap(out: Path, write: Callable[[Path], None]) -> None:
    """Write a model folder beside `out`, then rename it into place: a failed write leaves `out` untouched."""
    staging = out.with_name(f".{out.name}.staging-{os.getpid()}")
    retired = out.with_name(f".{out.name}.retired-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        out.rename(retired)
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


def check_latent_scale(vae: Any, vae_config: Any) -> float:
    """Refuse a VAE whose scaling factor does not bring its training data's latents to unit std (§3.2: the
    diffusion model is trained and sampled in that space); returns the measured std."""
    from generator.vae import scaled_latent_std
    from training.data import FrameDataset, clip_windows, load_clip_set
    from training.vae_stage import training_frames

    try:
        clip_set = load_clip_set(vae_config.data)
    except ConfigError as exc:
        raise AssembleError(
            f"--vae: its training data cannot be read to check the latent scale: {exc}"
        ) from exc
    dataset = FrameDataset(clip_set, vae_config.data, clip_windows(clip_set, vae_config.data.num_frames))
    std = scaled_latent_std(vae.eval(), training_frames(dataset), seed=vae_config.seed)
    low, high = LATENT_STD_RANGE
    if not low <= std <= high:
        raise AssembleError(
            f"--vae: latents scaled by scaling_factor {vae.config['scaling_factor']:.5f} have std {std:.3f} "
            f"on its training data (want {low}-{high}); re-run `ctrlgenaug train vae`, whose export computes "
            "the factor (1 / std of the posterior latents)"
        )
    return std


def parse_image_encoder(spec: str) -> dict[str, Any]:
    """`litemedsam`, `tiny` or `sam:PATH` -> ImageEncoderConfig fields."""
    if spec in ("litemedsam", "tiny"):
        return {"backbone": spec}
    if spec.startswith("sam:") and len(spec) > 4:
        return {"backbone": "sam", "weights_path": spec[4:]}
    raise AssembleError(f"--image-encoder: {spec!r} is not litemedsam, tiny or sam:PATH")


def assemble_model(
    vae_run: Path,
    text_run: Path,
    sequence_run: Path,
    classifier_run: Path,
    out: Path,
    name: str,
    version: str,
    image_encoder_spec: str | None = None,
    overwrite: bool = False,
) -> tuple[Path, str]:
    """Returns the model directory and its checksum."""
    from diffusers import AutoencoderKL

    from generator.image_encoder import ImageEncoderConfig, ImagePriorEncoder, ImagePriorProjector
    from generator.model_info import ModelInfo
    from generator.pipeline import CtrlGenAugPipeline, unet_conditions
    from generator.sequence_unet import SequenceUNet
    from generator.text_encoder import CLIPTextConditioner
    from training.conditioning import (
        PROJECTOR_COMPONENT,
        TEXT_COMPONENT,
        UNET_COMPONENT,
        VAE_COMPONENT,
        trained_component,
    )

    sequence_config = _final_config(sequence_run, "sequence", "--sequence")
    image_config = _final_config(sequence_config.image_stage_dir, "image", "--sequence (its image_stage_dir)")
    vae_config = _final_config(vae_run, "vae", "--vae")
    _final_config(text_run, "text", "--text")
    classifier_config = _final_config(classifier_run, "classifier", "--classifier")
    try:
        vae_dir = trained_component(vae_run, VAE_COMPONENT, "--vae")
        text_dir = trained_component(text_run, TEXT_COMPONENT, "--text")
        _check_same_latent_space(
            vae_dir, trained_component(image_config.vae_dir, VAE_COMPONENT, "vae_dir"), "--vae"
        )
        _check_same_component(
            text_dir,
            trained_component(image_config.text_encoder_dir, TEXT_COMPONENT, "text_encoder_dir"),
            "--text",
        )
    except ConfigError as exc:
        raise AssembleError(str(exc)) from exc

    encoder_settings = dict(image_config.image_encoder)
    if image_encoder_spec is not None:
        encoder_settings = {**parse_image_encoder(image_encoder_spec)}
    image_encoder = ImagePriorEncoder(ImageEncoderConfig(**encoder_settings))
    sequence_meta = read_metadata(sequence_run / FINAL_DIR)
    image_meta = read_metadata(sequence_config.image_stage_dir / FINAL_DIR)
    if image_encoder.identity != image_meta.get("image_encoder"):
        raise AssembleError(
            f"--image-encoder: {image_encoder.identity} is not the backbone stage 1 trained with "
            f"({image_meta.get('image_encoder')})"
        )

    class_names = tuple(sequence_meta["class_names"])
    classifier_meta = json.loads((classifier_run / FINAL_DIR / CLASSIFIER_DIR / CONFIG_FILE).read_text())
    if tuple(classifier_meta["class_names"]) != class_names:
        raise AssembleError(
            f"--classifier: classes {classifier_meta['class_names']} differ from the generator's "
            f"{list(class_names)}"
        )
    if (
        sequence_meta["data_manifest_checksum"]
        != read_metadata(classifier_run / FINAL_DIR)["data_manifest_checksum"]
    ):
        raise AssembleError(
            "--classifier: trained on another clip set (manifest checksum) than the generator"
        )

    vae = AutoencoderKL.from_pretrained(vae_dir)
    latent_std = check_latent_scale(vae, vae_config)
    unet = SequenceUNet.from_pretrained(sequence_run / FINAL_DIR / UNET_COMPONENT)
    info = ModelInfo(
        name=name,
        version=version,
        class_names=class_names,
        num_frames=sequence_config.data.num_frames,
        height=sequence_config.data.resolution,
        width=sequence_config.data.resolution,
        conditions=unet_conditions(unet),
    )
    noise = sequence_config.noise
    pipeline = CtrlGenAugPipeline(
        vae,
        CLIPTextConditioner.from_pretrained(text_dir),
        image_encoder,
        ImagePriorProjector.from_pretrained(sequence_run / FINAL_DIR / PROJECTOR_COMPONENT),
        unet,
        info,
        noise_schedule={
            "num_train_timesteps": noise.num_train_timesteps,
            "beta_start": noise.beta_start,
            "beta_end": noise.beta_end,
            "beta_schedule": noise.beta_schedule,
            "prediction_type": noise.prediction_type,
        },
    )
    if out.exists() and not overwrite:
        raise AssembleError(f"--out: {out} exists (pass --overwrite to replace it)")
    provenance = {
        stage: json.loads((run / FINAL_DIR / METADATA_FILE).read_text())
        for stage, run in (
            ("vae", vae_run),
            ("text", text_run),
            ("image", sequence_config.image_stage_dir),
            ("sequence", sequence_run),
            ("classifier", classifier_run),
        )
    }
    provenance["classifier"]["architecture"] = classifier_config.architecture
    provenance["vae"]["scaled_latent_std"] = latent_std

    return _write_model(out, pipeline, classifier_run / FINAL_DIR / CLASSIFIER_DIR, provenance)


def replace_decoder(model_dir: Path, vae_run: Path, version: str) -> tuple[Path, str]:
    """Give an assembled model the decoder of a `trainable: decoder` run of its own VAE, as a new version.

    The quality card is removed: it described the old decoder's clips (`ctrlgenaug evaluate synthesis`).
    """
    from diffusers import AutoencoderKL

    from generator.pipeline import CtrlGenAugPipeline
    from training.conditioning import VAE_COMPONENT, trained_component

    vae_config = _final_config(vae_run, "vae", "--vae")
    if vae_config.trainable != "decoder":
        raise AssembleError(
            f"--vae: {vae_run} trained {vae_config.trainable!r}, not a decoder-only fine-tune"
        )
    try:
        vae_dir = trained_component(vae_run, VAE_COMPONENT, "--vae")
    except ConfigError as exc:
        raise AssembleError(str(exc)) from exc
    _check_same_latent_space(vae_dir, model_dir / VAE_COMPONENT, "--vae")
    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir)
    pipeline.vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    pipeline.info = replace(pipeline.info, version=version)
    provenance = json.loads((model_dir / PROVENANCE_FILE).read_text())
    provenance["vae_decoder"] = json.loads((vae_run / FINAL_DIR / METADATA_FILE).read_text())

    return _write_model(model_dir, pipeline, model_dir / CLASSIFIER_DIR, provenance)


def _write_model(out: Path, pipeline: Any, classifier: Path, provenance: dict[str, Any]) -> tuple[Path, str]:
    """The pipeline, the filter's classifier and the provenance into `out`, swapped in once they load."""
    from generator.pipeline import CtrlGenAugPipeline

    def write(folder: Path) -> None:
        pipeline.save_pretrained(folder)
        shutil.copytree(classifier, folder / CLASSIFIER_DIR)
        (folder / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        CtrlGenAugPipeline.from_pretrained(folder)

    write_then_swap(out, write)
    return out, CtrlGenAugPipeline.from_pretrained(out).checksum()
