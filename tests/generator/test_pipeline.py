"""CtrlGenAugPipeline: seeded sampling, batching invariance, save/load round trip, checksum, model card."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from generator.conditions import CONDITION_NAMES, BankConditions
from generator.model_info import MODEL_CARD, ModelInfo, model_checksum
from generator.pipeline import CtrlGenAugPipeline, build_tiny_pipeline
from generator.sampling import SamplerSettings, SamplingCancelled

SETTINGS = SamplerSettings(steps=4)


@pytest.fixture(scope="module")
def pipeline() -> CtrlGenAugPipeline:
    return build_tiny_pipeline(num_classes=3, seed=0)


@pytest.fixture(scope="module")
def bank() -> BankConditions:
    rng = np.random.default_rng(1)
    return BankConditions(
        class_index=2,
        text="irregular margin",
        image_prior=rng.integers(0, 256, size=(32, 32), dtype=np.uint8),
        motion_field=(rng.standard_normal((8, 2, 32, 32)) * 5).astype(np.float32),
    )


@pytest.fixture(scope="module")
def saved(pipeline, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    pipeline.save_pretrained(directory)
    return directory


def test_tiny_pipeline_card_and_shapes(pipeline, bank) -> None:
    info = pipeline.info
    assert (info.num_frames, info.height, info.width) == (8, 32, 32)
    assert info.class_names == ("class_0", "class_1", "class_2")
    assert info.conditions == CONDITION_NAMES
    assert pipeline.latent_shape == (4, 8, 4, 4)
    clips = pipeline.sample([bank, BankConditions()], [0, 1], SETTINGS)
    assert clips.shape == (2, 8, 32, 32) and clips.dtype == np.uint8
    assert clips.std() > 1.0


def test_tiny_pipeline_is_seeded() -> None:
    a, b, c = build_tiny_pipeline(seed=1), build_tiny_pipeline(seed=1), build_tiny_pipeline(seed=2)
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.unet.state_dict().values(), b.unet.state_dict().values(), strict=True)
    )
    assert not all(
        torch.equal(x, y)
        for x, y in zip(a.unet.state_dict().values(), c.unet.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="size must be a multiple of 8"):
        build_tiny_pipeline(size=30)


def test_same_seed_same_clip_different_seed_different_clip(pipeline, bank) -> None:
    first = pipeline.sample([bank], [42], SETTINGS)
    again = pipeline.sample([bank], [42], SETTINGS)
    other = pipeline.sample([bank], [43], SETTINGS)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other.astype(int)).mean() > 1.0


def test_a_clip_does_not_depend_on_its_batch(pipeline, bank) -> None:
    neighbours = [BankConditions(class_index=0, text="smooth"), bank, BankConditions()]
    alone = pipeline.sample_latents([bank], [7], SETTINGS)
    in_batch = pipeline.sample_latents(neighbours, [3, 7, 9], SETTINGS)
    torch.testing.assert_close(in_batch[1], alone[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(pipeline.decode(in_batch)[1], pipeline.decode(alone)[0])


def test_progress_and_cancel_through_sample(pipeline, bank) -> None:
    steps: list[tuple[int, int]] = []
    pipeline.sample([bank], [0], SETTINGS, progress=lambda i, n: steps.append((i, n)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(SamplingCancelled):
        pipeline.sample([bank], [0], SETTINGS, should_cancel=lambda: True)


def test_sample_rejects_bad_seeds(pipeline, bank) -> None:
    with pytest.raises(ValueError, match="seeds\\[1\\] must be an integer"):
        pipeline.sample([bank, bank], [0, -1], SETTINGS)
    with pytest.raises(ValueError, match="banks and seeds must have the same length"):
        pipeline.sample([bank], [0, 1], SETTINGS)


def test_decoding_in_chunks_is_exact(pipeline, bank) -> None:
    latents = pipeline.sample_latents([bank], [5], SETTINGS)
    chunked = pipeline.decode(latents)
    pipeline.decode_chunk_frames = 16
    try:
        whole = pipeline.decode(latents)
    finally:
        pipeline.decode_chunk_frames = 4
    np.testing.assert_array_equal(chunked, whole)


def test_encode_latents_is_the_scaled_posterior_mean(pipeline) -> None:
    clips = np.random.default_rng(0).integers(0, 256, size=(2, 8, 32, 32), dtype=np.uint8)
    latents = pipeline.encode_latents(clips)
    assert latents.shape == (2, 8, 4, 4, 4)
    frames = torch.from_numpy(clips).float().reshape(16, 1, 32, 32) / 127.5 - 1
    with torch.no_grad():
        mean = pipeline.vae.encode(frames).latent_dist.mean * 0.18215
    torch.testing.assert_close(latents.reshape(16, 4, 4, 4), mean, rtol=1e-5, atol=1e-5)


def test_model_directory_layout(saved) -> None:
    files = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file())
    assert MODEL_CARD in files and "model_index.json" in files
    for folder in ("vae", "unet", "text_encoder", "image_encoder", "image_projector", "scheduler"):
        assert any(f.startswith(folder + "/") for f in files), folder
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))]
    index = json.loads((saved / "model_index.json").read_text())
    assert index["unet"] == ["generator.sequence_unet", "SequenceUNet"]
    assert index["scheduler"] == ["diffusers", "DDIMScheduler"]
    card = json.loads((saved / MODEL_CARD).read_text())
    assert card == {
        "name": "tiny-ctrlgenaug",
        "version": "0.0.0+seed0",
        "class_names": ["class_0", "class_1", "class_2"],
        "num_frames": 8,
        "height": 32,
        "width": 32,
        "conditions": list(CONDITION_NAMES),
    }
    scheduler = json.loads((saved / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["beta_start"], scheduler["beta_end"], scheduler["steps_offset"]) == (0.00085, 0.012, 1)


def test_save_load_round_trip_gives_identical_samples(pipeline, saved, bank) -> None:
    loaded = CtrlGenAugPipeline.from_pretrained(saved)
    assert loaded.info == pipeline.info
    settings = SamplerSettings(name="unipc", steps=4)
    np.testing.assert_array_equal(
        loaded.sample([bank, BankConditions(text="x")], [3, 4], settings),
        pipeline.sample([bank, BankConditions(text="x")], [3, 4], settings),
    )


def test_checksum_is_stable_and_tracks_weights(pipeline, saved, tmp_path) -> None:
    listing = sorted(
        (p.relative_to(saved).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in saved.rglob("*")
        if p.is_file()
    )
    expected = hashlib.sha256("".join(f"{sha}  {rel}\n" for rel, sha in listing).encode()).hexdigest()
    loaded = CtrlGenAugPipeline.from_pretrained(saved)
    assert loaded.checksum() == expected == model_checksum(saved)

    resaved = tmp_path / "again"
    loaded.save_pretrained(resaved)
    assert loaded.checksum() == expected  # same weights, same bytes

    weights = resaved / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    name = next(iter(state))
    state[name] = state[name] + 1e-3
    save_file(state, weights, metadata={"format": "pt"})
    assert model_checksum(resaved) != expected


def test_checksum_needs_a_directory() -> None:
    with pytest.raises(ValueError, match="checksum needs a model directory"):
        build_tiny_pipeline().checksum()


def test_from_pretrained_refuses_foreign_directories(saved, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Ctrl-GenAug model directory"):
        CtrlGenAugPipeline.from_pretrained(tmp_path)
    forged = tmp_path / "forged"
    forged.mkdir()
    index = json.loads((saved / "model_index.json").read_text())
    index["unet"] = ["os", "system"]
    (forged / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="unknown component 'unet'"):
        CtrlGenAugPipeline.from_pretrained(forged)


def test_model_info_validation() -> None:
    fields = {
        "name": "m",
        "version": "1",
        "class_names": ["a", "b"],
        "num_frames": 8,
        "height": 32,
        "width": 32,
        "conditions": ["text"],
    }
    assert ModelInfo.from_json(fields).num_classes == 2
    with pytest.raises(ValueError, match="class_names must be unique"):
        ModelInfo(**{**fields, "class_names": ["a", "a"]})
    with pytest.raises(ValueError, match="num_frames must be a positive integer"):
        ModelInfo(**{**fields, "num_frames": 0})
    with pytest.raises(ValueError, match="conditions \\['colour'\\] are not among"):
        ModelInfo(**{**fields, "conditions": ["colour"]})
    with pytest.raises(ValueError, match="missing fields \\['width'\\]"):
        ModelInfo.from_json({k: v for k, v in fields.items() if k != "width"})


def test_pipeline_refuses_a_card_that_disagrees_with_the_unet(pipeline) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="model card conditions"):
        CtrlGenAugPipeline(
            pipeline.vae,
            pipeline.text_encoder,
            pipeline.image_encoder,
            pipeline.image_projector,
            pipeline.unet,
            replace(pipeline.info, conditions=("text",)),
        )
    with pytest.raises(ValueError, match="class rows"):
        CtrlGenAugPipeline(
            pipeline.vae,
            pipeline.text_encoder,
            pipeline.image_encoder,
            pipeline.image_projector,
            pipeline.unet,
            replace(pipeline.info, class_names=("a", "b")),
        )


@pytest.mark.gpu
def test_pipeline_on_cuda_matches_cpu_and_runs_in_half_precision(saved, bank) -> None:
    cpu = CtrlGenAugPipeline.from_pretrained(saved)
    cuda = CtrlGenAugPipeline.from_pretrained(saved, device="cuda")
    assert cuda.device.type == "cuda"
    expected = cpu.sample_latents([bank], [3], SETTINGS)
    torch.testing.assert_close(
        cuda.sample_latents([bank], [3], SETTINGS).cpu(), expected, rtol=1e-2, atol=1e-2
    )
    half = CtrlGenAugPipeline.from_pretrained(saved, device="cuda", dtype=torch.float16)
    clips = half.sample([bank, BankConditions()], [3, 4], SETTINGS)
    assert clips.shape == (2, 8, 32, 32) and clips.dtype == np.uint8
    assert np.abs(clips[0].astype(int) - cpu.decode(expected)[0]).mean() < 8
