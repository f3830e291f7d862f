"""The VAE objective: L1 + KL weight x KL, plus LPIPS only when a local LPIPS state file is given."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import vae_config

from training.config import ConfigError, parse_config
from training.vae_stage import augment_frames, build_vae_stage, data_scaling_factor, load_perceptual_loss


def test_loss_is_l1_plus_weighted_kl_plus_lpips_when_weights_are_given(
    clip_set_dir: Path, tmp_path: Path
) -> None:
    import lpips

    weights = tmp_path / "lpips_alex.pt"
    torch.save(lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False).state_dict(), weights)
    plain = build_vae_stage(parse_config(vae_config(clip_set_dir, tmp_path / "a", steps=1, kl_weight=0.5)))
    assert plain.summary["perceptual_loss"] is False
    with_lpips = build_vae_stage(
        parse_config(
            vae_config(
                clip_set_dir,
                tmp_path / "b",
                steps=1,
                kl_weight=0.5,
                perceptual_weights_path=str(weights),
                perceptual_weight=2.0,
            )
        )
    )
    assert with_lpips.summary["perceptual_loss"] is True and len(with_lpips.frozen) == 1
    batch = {"pixels": torch.stack([plain.dataset[i]["pixels"] for i in range(4)])}
    out = plain.model(batch, torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "l1", "kl"}
    torch.testing.assert_close(out["loss"], out["l1"] + 0.5 * out["kl"])
    out = with_lpips.model(batch, torch.Generator().manual_seed(0))
    assert float(out["lpips"]) != 0.0  # random heads here: the sign is arbitrary
    torch.testing.assert_close(out["loss"], out["l1"] + 0.5 * out["kl"] + 2.0 * out["lpips"])


def test_perceptual_weights_must_be_a_full_lpips_state(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="perceptual_weights_path: .* is not a file"):
        load_perceptual_loss(tmp_path / "missing.pt")
    partial = tmp_path / "heads_only.pt"
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, partial)
    with pytest.raises(ConfigError, match="is not a full LPIPS-alex state dict"):
        load_perceptual_loss(partial)


def test_augmentation_stays_in_range_replays_from_the_seed_and_varies_intensity() -> None:
    torch.manual_seed(0)
    frames = torch.rand(64, 1, 16, 16) * 1.2 - 0.6
    first = augment_frames(frames, torch.Generator().manual_seed(3))
    assert first.shape == frames.shape
    assert first.min() >= -1 and first.max() <= 1
    assert torch.equal(first, augment_frames(frames, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, augment_frames(frames, torch.Generator().manual_seed(4)))
    means = first.mean(dim=(1, 2, 3))
    assert means.std() > 3 * frames.mean(dim=(1, 2, 3)).std()  # brightness/contrast/inversion vary per frame
    inverted = (means - frames.mean(dim=(1, 2, 3))) > 0.5
    assert 0 < int(inverted.sum()) < 64


def test_vae_export_sets_the_scaling_factor_that_whitens_the_training_latents(
    clip_set_dir: Path, tmp_path: Path
) -> None:
    from generator.vae import scaled_latent_std
    from training.stages import run_stage
    from training.vae_stage import training_frames

    config = parse_config(vae_config(clip_set_dir, tmp_path / "vae", steps=2, augment=True))
    run = build_vae_stage(config)
    result = run_stage(config, show_progress=False)
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(result.final_dir / "vae")
    assert vae.config.scaling_factor != 0.18215
    assert vae.config.scaling_factor == pytest.approx(data_scaling_factor(vae, run.dataset, config.seed))
    assert scaled_latent_std(vae, training_frames(run.dataset), seed=config.seed) == pytest.approx(1.0, abs=1e-4)
