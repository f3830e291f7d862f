"""Checkpoints round-trip and `--resume` continues bit for bit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_helpers import vae_config

from training.checkpoint import list_checkpoints
from training.config import ConfigError, parse_config
from training.stages import run_stage


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "final" / "vae" / "diffusion_pytorch_model.safetensors"))


def _config(data_dir: Path, out: Path, **overrides: object) -> object:
    # 48 frames in batches of 20: 3 batches an epoch, so step 4 resumes in the middle of epoch 1.
    return parse_config(
        vae_config(
            data_dir,
            out,
            steps=8,
            batch_size=20,
            checkpoint_every=4,
            optimizer={"lr": 1e-3, "warmup_steps": 3},
            **overrides,
        )
    )


@pytest.fixture(scope="module")
def straight_run(clip_set_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    run_stage(_config(clip_set_dir, out), show_progress=False)
    return out


def test_checkpoint_folder_holds_state_config_and_metadata(straight_run: Path, clip_set_dir: Path) -> None:
    from diffusers import AutoencoderKL

    from ingest.manifest import manifest_checksum

    steps = [step for step, _ in list_checkpoints(straight_run)]
    assert steps == [4, 8]
    checkpoint = straight_run / "checkpoints" / "step-0000004"
    for name in (
        "model.safetensors",
        "optimizer.bin",
        "scheduler.bin",
        "random_states_0.pkl",
        "config.json",
        "metadata.json",
        "custom_checkpoint_0.pkl",
    ):
        assert (checkpoint / name).is_file(), name
    metadata = json.loads((checkpoint / "metadata.json").read_text())
    assert metadata["step"] == 4
    assert metadata["data_manifest_checksum"] == manifest_checksum(clip_set_dir / "manifest.jsonl")
    assert metadata["config"] == json.loads((checkpoint / "config.json").read_text())
    assert metadata["config"]["optimizer"]["warmup_steps"] == 3
    final_state = load_file(str(straight_run / "checkpoints" / "step-0000008" / "model.safetensors"))
    exported = AutoencoderKL.from_pretrained(straight_run / "final" / "vae").state_dict()
    assert set(exported) == {key.removeprefix("vae.") for key in final_state}
    assert all(torch.equal(exported[key.removeprefix("vae.")], value) for key, value in final_state.items())


def test_resume_continues_bit_for_bit(straight_run: Path, clip_set_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(straight_run / "checkpoints" / "step-0000004", tmp_path / "checkpoints" / "step-0000004")
    torch.manual_seed(12345)  # whatever the process did before, the checkpoint's RNG states take over
    result = run_stage(_config(clip_set_dir, tmp_path), resume=True, show_progress=False)
    assert result.steps == 8
    straight, resumed = _weights(straight_run), _weights(tmp_path)
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
    losses = {
        json.loads(line)["step"]: json.loads(line)["loss"]
        for line in (straight_run / "losses.jsonl").read_text().splitlines()
    }
    assert json.loads((tmp_path / "losses.jsonl").read_text().splitlines()[-1])["loss"] == losses[8]


def test_another_seed_trains_other_weights(straight_run: Path, clip_set_dir: Path, tmp_path: Path) -> None:
    run_stage(_config(clip_set_dir, tmp_path, seed=1), show_progress=False)
    straight, other = _weights(straight_run), _weights(tmp_path)
    assert not all(torch.equal(straight[key], other[key]) for key in straight)


def test_resume_refuses_a_changed_config(straight_run: Path, clip_set_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(straight_run / "checkpoints" / "step-0000004", tmp_path / "checkpoints" / "step-0000004")
    changed = _config(clip_set_dir, tmp_path, kl_weight=1e-3)
    with pytest.raises(ConfigError, match="--resume: kl_weight differ"):
        run_stage(changed, resume=True, show_progress=False)
    with pytest.raises(ConfigError, match="--resume: no checkpoint under"):
        run_stage(_config(clip_set_dir, tmp_path / "empty"), resume=True, show_progress=False)
