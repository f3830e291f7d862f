"""The VAE objective: L1 + KL weight x KL, plus LPIPS only when a local LPIPS state file is given."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import vae_config

from training.config import ConfigError, parse_config
from training.vae_stage import build_vae_stage, load_perceptual_loss


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
