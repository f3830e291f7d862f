"""`train assemble`: the trained stages -> one model directory (docs/contracts.md layout) + `classifier/`."""

from __future__ import annotations

import hashlib
import json
import shutil
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


def check_latent_scale(vae: Any, vae_config: Any) -> float:
    """Refuse a VAE whose scaling factor does not bring its training data's latents to unit std (§3.2: the
    diffusion model is trained and sampled in that space); returns the measured std."""
    from generator.vae import scaled_latent_std
    from training.data import FrameDataset, clip_windows, load_clip_set
    from training.vae_stage import training_frames

    try:
        clip_set = load_clip_set(vae_config.data)
    except ConfigError as exc:
        raise AssembleError(f"--vae: its training data cannot be read to check the latent scale: {exc}") from exc
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
        _check_same_component(
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
    if out.exists():
        if not overwrite:
            raise AssembleError(f"--out: {out} exists (pass --overwrite to replace it)")
        shutil.rmtree(out)
    pipeline.save_pretrained(out)
    shutil.copytree(classifier_run / FINAL_DIR / CLASSIFIER_DIR, out / CLASSIFIER_DIR)
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
    (out / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    loaded = CtrlGenAugPipeline.from_pretrained(out)
    return out, loaded.checksum()
