"""Each stage trains on the tiny echo clip set and lowers its fixed-batch loss; assemble loads and samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from training_helpers import (
    classifier_config,
    fixed_batch_loss,
    image_config,
    sequence_config,
    text_config,
    vae_config,
)

from training.config import parse_config
from training.stages import build_stage, run_stage
from training.trainer import train


def _train_and_measure(config: dict[str, Any]) -> tuple[float, float, Any]:
    parsed = parse_config(config)
    run = build_stage(parsed)
    before = fixed_batch_loss(run)
    result = train(parsed, run, show_progress=False)
    return before, fixed_batch_loss(run), result


@pytest.fixture(scope="module")
def stages(clip_set_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """vae -> text -> image -> sequence -> classifier, each trained for a handful of steps."""
    root = tmp_path_factory.mktemp("runs")
    out: dict[str, Any] = {"root": root, "clip_set_dir": clip_set_dir}
    out["vae"] = _train_and_measure(vae_config(clip_set_dir, root / "vae", steps=12))
    out["text"] = _train_and_measure(text_config(clip_set_dir, root / "text", steps=30))
    out["image"] = _train_and_measure(
        image_config(clip_set_dir, root / "image", root / "vae", root / "text", 15)
    )
    out["sequence"] = _train_and_measure(sequence_config(clip_set_dir, root / "sequence", root / "image", 25))
    out["classifier"] = run_stage(
        parse_config(classifier_config(clip_set_dir, root / "classifier", 6)), show_progress=False
    )
    return out


@pytest.mark.parametrize(
    ("stage", "component", "ratio"),
    [("vae", "vae", 0.8), ("text", "text_encoder", 0.85), ("image", "unet", 0.8), ("sequence", "unet", 0.98)],
)
def test_stage_lowers_its_loss_and_exports(
    stages: dict[str, Any], stage: str, component: str, ratio: float
) -> None:
    before, after, result = stages[stage]
    assert np.isfinite(before) and np.isfinite(after)
    assert after < ratio * before, f"{stage}: fixed-batch loss {before:.4f} -> {after:.4f}"
    assert result.steps == {"vae": 12, "text": 30, "image": 15, "sequence": 25}[stage]
    final = result.final_dir
    assert (final / component).is_dir() and list((final / component).glob("*.safetensors"))
    metadata = json.loads((final / "metadata.json").read_text())
    from ingest.manifest import manifest_checksum

    data_dir = Path(metadata["config"]["data"]["data_dir"])
    assert metadata["data_manifest_checksum"] == manifest_checksum(data_dir / "manifest.jsonl")
    assert metadata["step"] == result.steps and metadata["stage"] == stage
    assert "package_version" in metadata["code_version"]
    losses = [json.loads(line) for line in (result.output_dir / "losses.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in losses] == list(range(1, result.steps + 1))


def test_sequence_stage_trains_only_the_stage2_parameters(stages: dict[str, Any]) -> None:
    from generator.image_unet import ImageUNet
    from generator.sequence_unet import SequenceUNet

    root = stages["root"]
    image_unet = ImageUNet.from_pretrained(root / "image" / "final" / "unet")
    sequence_unet = SequenceUNet.from_pretrained(root / "sequence" / "final" / "unet")
    reference = SequenceUNet.from_image_unet(image_unet, sequence_unet.settings)
    trainable = {id(p) for p in reference.trainable_parameters_stage2()}
    trained = dict(sequence_unet.named_parameters())
    changed_frozen, changed_trainable = [], 0
    for name, param in reference.named_parameters():
        same = torch.equal(param, trained[name])
        if id(param) in trainable:
            changed_trainable += not same
        elif not same:
            changed_frozen.append(name)
    assert changed_frozen == []
    assert changed_trainable > 0
    summary = json.loads((root / "sequence" / "final" / "metadata.json").read_text())
    assert 0 < summary["trainable_parameters"] < summary["total_parameters"]


def test_classifier_stage_saves_a_loadable_classifier(stages: dict[str, Any]) -> None:
    from classify.checkpoint import load_classifier

    result = stages["classifier"]
    losses = [
        json.loads(line)["loss"] for line in (result.output_dir / "losses.jsonl").read_text().splitlines()
    ]
    assert len(losses) == 6 and losses[-1] < losses[0]
    model, meta = load_classifier(result.final_dir / "classifier")
    assert meta["class_names"] == ["early", "late"] and meta["frames"] == 8 and meta["size"] == 32
    logits = model(torch.zeros(2, 1, 8, 32, 32))
    assert logits.shape == (2, 2)
    metadata = json.loads((result.final_dir / "metadata.json").read_text())
    assert metadata["clips"] == 5 and metadata["class_counts"] == [3, 2]


def test_assemble_writes_a_model_directory_that_samples(stages: dict[str, Any], tmp_path: Path) -> None:
    from generator.conditions import BankConditions
    from generator.pipeline import CtrlGenAugPipeline
    from generator.sampling import SamplerSettings
    from training.assemble import assemble_model

    root = stages["root"]
    model_dir, checksum = assemble_model(
        root / "vae",
        root / "text",
        root / "sequence",
        root / "classifier",
        tmp_path / "model",
        "demo",
        "0.1.0",
    )
    for name in ("ctrlgenaug_model.json", "model_index.json", "training_provenance.json"):
        assert (model_dir / name).is_file()
    for folder in (
        "vae",
        "unet",
        "text_encoder",
        "image_encoder",
        "image_projector",
        "scheduler",
        "classifier",
    ):
        assert (model_dir / folder).is_dir(), folder
    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir)
    assert pipeline.checksum() == checksum
    assert pipeline.info.class_names == ("early", "late") and pipeline.info.num_frames == 8
    clips = pipeline.sample(
        [BankConditions(class_index=1, text="apical four-chamber echo, late systole")],
        seeds=[0],
        sampler=SamplerSettings(steps=2),
    )
    assert clips.shape == (1, 8, 32, 32) and clips.dtype == np.uint8


def test_assemble_refuses_another_image_backbone(stages: dict[str, Any], tmp_path: Path) -> None:
    from training.assemble import AssembleError, assemble_model

    root = stages["root"]
    with pytest.raises(AssembleError, match="--image-encoder"):
        assemble_model(
            root / "vae",
            root / "text",
            root / "sequence",
            root / "classifier",
            tmp_path / "m",
            "demo",
            "0.1.0",
            image_encoder_spec="tiny",
        )


def test_stage2_feeds_the_unet_the_motion_field_pathways_and_image_prior(stages: dict[str, Any]) -> None:
    """A sequence stage that never hands the UNet its motion condition or image prior must fail here."""
    from training.data import collate

    from generator.sequence_unet import SequenceUNet

    root = stages["root"]
    run = build_stage(parse_config(sequence_config(stages["clip_set_dir"], root / "probe", root / "image", 1)))
    # The trained stage-2 weights: at inflation the motion weights are zero, so motion cannot act yet.
    trained = SequenceUNet.from_pretrained(root / "sequence" / "final" / "unet")
    run.model.unet.load_state_dict(trained.state_dict())
    seen: list[dict[str, Any]] = []
    run.model.unet.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs), with_kwargs=True)
    batch = collate([run.dataset[i] for i in range(len(run.dataset))])
    assert batch["motion_field"].abs().amax() > 0  # the tiny set's clips move (conftest)

    def loss(motion_scale: float, seed: int) -> float:
        moved = {**batch, "motion_field": batch["motion_field"] * motion_scale}
        prepared = run.prepare_batch(moved, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return float(run.model(prepared, torch.Generator().manual_seed(seed))["loss"])

    for seed in range(12):
        loss(1.0, seed)
    motion_given = [kw for kw in seen if kw["motion_field"] is not None and kw["motion_field"].abs().amax() > 0]
    assert motion_given, "the motion field never reached the UNet"
    assert all(kw["pathways"] is not None and len(kw["pathways"]) == len(batch["text"]) for kw in motion_given)
    priors = [kw["image_prior_tokens"] for kw in seen if kw["image_prior_tokens"] is not None]
    assert any(tokens.abs().amax() > 0 for tokens in priors), "the image prior never reached the UNet"
    kept = next(seed for seed in range(12) if any(kw is seen[seed] for kw in motion_given))
    assert loss(1.0, kept) != loss(3.0, kept)  # the UNet's output depends on the motion it is given


def test_ema_weights_are_exported_and_resume_exactly(stages: dict[str, Any], tmp_path: Path) -> None:
    """The exported UNet is the EMA of the trained weights, and the EMA state survives a resume bit for bit."""
    import shutil

    from safetensors.torch import load_file

    root = stages["root"]

    def config(out: Path) -> Any:
        return parse_config(
            image_config(
                stages["clip_set_dir"], out, root / "vae", root / "text", 4, checkpoint_every=2,
                ema={"decay": 0.9},
            )
        )

    def exported(out: Path) -> dict[str, torch.Tensor]:
        return load_file(str(out / "final" / "unet" / "diffusion_pytorch_model.safetensors"))

    straight = tmp_path / "straight"
    run_stage(config(straight), show_progress=False)
    raw = load_file(str(straight / "checkpoints" / "step-0000004" / "model.safetensors"))
    ema = exported(straight)
    moved = [k for k, v in ema.items() if not torch.equal(v, raw[f"unet.{k}"])]
    assert moved, "the exported weights are the raw weights, not their moving average"

    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    shutil.rmtree(resumed / "final")
    shutil.rmtree(resumed / "checkpoints" / "step-0000004")
    run_stage(config(resumed), resume=True, show_progress=False)
    again = exported(resumed)
    assert all(torch.equal(ema[k], again[k]) for k in ema)


def _weights_digest(folder: Path) -> str:
    import hashlib

    return hashlib.sha256((folder / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()


def test_decoder_finetune_keeps_the_latent_space_and_replaces_a_models_decoder(
    stages: dict[str, Any], tmp_path: Path
) -> None:
    from generator.pipeline import CtrlGenAugPipeline
    from training.assemble import AssembleError, assemble_model, latent_space_digest, replace_decoder

    root = stages["root"]
    parent = root / "vae" / "final" / "vae"
    decoder_run = tmp_path / "vae_decoder"
    before, after, _ = _train_and_measure(
        vae_config(
            stages["clip_set_dir"], decoder_run, steps=6, init_from=str(parent), trainable="decoder", kl_weight=0.0
        )
    )
    tuned = decoder_run / "final" / "vae"
    assert after < before
    assert latent_space_digest(tuned) == latent_space_digest(parent)
    assert _weights_digest(tuned) != _weights_digest(parent)
    assert json.loads((tuned / "config.json").read_text())["scaling_factor"] == pytest.approx(
        json.loads((parent / "config.json").read_text())["scaling_factor"]
    )

    model_dir, old_checksum = assemble_model(
        root / "vae", root / "text", root / "sequence", root / "classifier", tmp_path / "model", "demo", "0.1.0"
    )
    (model_dir / "quality.json").write_text("{}")
    with pytest.raises(AssembleError, match="--vae: .* trained 'all', not a decoder-only fine-tune"):
        replace_decoder(model_dir, root / "vae", "0.1.1")
    _, new_checksum = replace_decoder(model_dir, decoder_run, "0.1.1")
    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir)
    assert pipeline.info.version == "0.1.1" and new_checksum != old_checksum
    assert _weights_digest(model_dir / "vae") == _weights_digest(tuned)
    assert not (model_dir / "quality.json").exists()
    assert (model_dir / "classifier").is_dir()
    provenance = json.loads((model_dir / "training_provenance.json").read_text())
    assert provenance["vae_decoder"]["trainable"] == "decoder"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".model")) == []

    # a full fine-tune moves the latent space: the diffusion stages trained on the parent refuse it
    full_run = tmp_path / "vae_full"
    _train_and_measure(vae_config(stages["clip_set_dir"], full_run, steps=3, init_from=str(parent)))
    with pytest.raises(AssembleError, match="--vae: .* encodes to another latent space"):
        assemble_model(full_run, root / "text", root / "sequence", root / "classifier", tmp_path / "m2", "d", "1")


def test_decoder_only_training_needs_a_vae_to_start_from(stages: dict[str, Any], tmp_path: Path) -> None:
    from training.config import ConfigError

    config = parse_config(vae_config(stages["clip_set_dir"], tmp_path / "v", steps=1, trainable="decoder"))
    with pytest.raises(ConfigError, match="trainable: 'decoder' fine-tunes a trained VAE; set init_from"):
        build_stage(config)


def test_a_failed_model_write_leaves_the_old_model_in_place(tmp_path: Path) -> None:
    from training.assemble import write_then_swap

    out = tmp_path / "model"
    out.mkdir()
    (out / "weights").write_text("old")

    def failing(folder: Path) -> None:
        folder.mkdir()
        (folder / "weights").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_then_swap(out, failing)
    assert (out / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    def writing(folder: Path) -> None:
        folder.mkdir()
        (folder / "weights").write_text("new")

    write_then_swap(out, writing)
    assert (out / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
