"""Initialising from a tiny, locally saved Stable Diffusion 1.x folder: UNet, RGB->gray VAE, inflation."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from generator.config import ImageUNetConfig, SequenceUNetConfig
from generator.sd_loading import (
    grayscale_vae_from_rgb,
    image_unet_from_sd,
    load_sd_image_unet,
    load_sd_vae,
    sd_image_unet_config,
)
from generator.sequence_unet import SequenceUNet
from generator.vae import VAEConfig

TINY_VAE = VAEConfig(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=4, sample_size=32)


def _tiny_sd_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        attention_head_dim=4,
        norm_num_groups=16,
        cross_attention_dim=24,
    )


def _tiny_sd_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=32,
    )


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory) -> Path:
    """A Stable-Diffusion-shaped diffusers folder: unet/, vae/ and a transformers text_encoder/."""
    root = tmp_path_factory.mktemp("sd")
    torch.manual_seed(0)
    unet = _tiny_sd_unet()
    with torch.no_grad():  # SD's conv_out is not zero after training; make the UNet's output informative
        for param in unet.conv_out.parameters():
            param.normal_(0, 0.1)
    unet.save_pretrained(root / "unet")
    _tiny_sd_vae().save_pretrained(root / "vae")
    text = CLIPTextConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2)
    CLIPTextModel(text).save_pretrained(root / "text_encoder")
    return root


@pytest.fixture(scope="module")
def unet_config(sd_dir) -> ImageUNetConfig:
    return sd_image_unet_config(sd_dir, num_classes=3)


def _inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(batch, 4, 8, 8, generator=generator)
    text = torch.randn(batch, 5, 24, generator=generator)
    return sample, torch.tensor([10, 500])[:batch], text


@torch.no_grad()
def test_gray_vae_on_gray_image_equals_rgb_vae_on_replicated_image(sd_dir) -> None:
    rgb = AutoencoderKL.from_pretrained(sd_dir / "vae").eval()
    gray = load_sd_vae(sd_dir, TINY_VAE).eval()
    assert (gray.config.in_channels, gray.config.out_channels) == (1, 1)
    image = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    gray_posterior = gray.encode(image).latent_dist
    rgb_posterior = rgb.encode(image.repeat(1, 3, 1, 1)).latent_dist
    torch.testing.assert_close(gray_posterior.mean, rgb_posterior.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gray_posterior.logvar, rgb_posterior.logvar, rtol=1e-5, atol=1e-5)
    latents = gray_posterior.mean
    torch.testing.assert_close(
        gray.decode(latents).sample,
        rgb.decode(latents).sample.mean(dim=1, keepdim=True),
        rtol=1e-5,
        atol=1e-5,
    )
    assert rgb.decode(latents).sample.std(dim=1).mean() > 1e-3  # the RGB outputs differ: averaging is real


def test_vae_conversion_is_reported_and_logged(sd_dir, caplog) -> None:
    rgb = AutoencoderKL.from_pretrained(sd_dir / "vae")
    with caplog.at_level(logging.INFO, logger="generator.sd_loading"):
        gray, steps = grayscale_vae_from_rgb(rgb)
    assert [step.parameter for step in steps] == [
        "encoder.conv_in.weight",
        "decoder.conv_out.weight",
        "decoder.conv_out.bias",
    ]
    assert "summed over the 3 RGB input channels" in caplog.text
    assert "averaged over the 3 RGB output channels" in caplog.text
    torch.testing.assert_close(gray.encoder.conv_in.weight, rgb.encoder.conv_in.weight.sum(1, keepdim=True))
    torch.testing.assert_close(gray.decoder.conv_out.bias, rgb.decoder.conv_out.bias.mean().reshape(1))
    torch.testing.assert_close(
        gray.decoder.mid_block.resnets[0].conv1.weight, rgb.decoder.mid_block.resnets[0].conv1.weight
    )
    with pytest.raises(ValueError, match="expected a 3-channel \\(RGB\\) VAE, got in_channels=1"):
        grayscale_vae_from_rgb(gray)


def test_vae_config_must_match_the_sd_vae(sd_dir) -> None:
    with pytest.raises(
        ValueError, match="block_out_channels: ours \\(8, 8, 16, 32\\), SD \\(8, 8, 16, 16\\)"
    ):
        load_sd_vae(sd_dir, replace(TINY_VAE, block_out_channels=(8, 8, 16, 32)))
    with pytest.raises(FileNotFoundError, match="no vae/config.json of a diffusers AutoencoderKL"):
        load_sd_vae(sd_dir / "text_encoder", TINY_VAE)


@torch.no_grad()
def test_loaded_image_unet_predicts_what_sd_predicts(sd_dir, unet_config, caplog) -> None:
    sd_unet = UNet2DConditionModel.from_pretrained(sd_dir / "unet").eval()
    with caplog.at_level(logging.INFO, logger="generator.sd_loading"):
        image_unet = load_sd_image_unet(sd_dir, unet_config).eval()
    assert "text_encoder" in caplog.text and "not loaded" in caplog.text
    assert "to_{q,k,v,out}_img of 7 cross-attention layers copied from attn2.to_q / to_k / to_v" in caplog.text
    unet = image_unet.unet
    assert unet.class_embedding.weight.shape == (4, 128)  # 3 classes + null, time-embedding width
    assert torch.equal(unet.class_embedding.weight, torch.zeros(4, 128))
    block = unet.down_blocks[0].attentions[0].transformer_blocks[0]
    assert torch.equal(block.attn2.processor.to_k_img.weight, block.attn2.to_k.weight)
    assert torch.equal(block.attn2.processor.to_v_img.weight, block.attn2.to_v.weight)
    sample, timestep, text = _inputs()
    expected = sd_unet(sample, timestep, encoder_hidden_states=text).sample
    ours = image_unet(sample, timestep, text_tokens=text, class_labels=torch.tensor([0, 3]))
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)
    # The image branch is live: image tokens change the prediction.
    tokens = torch.randn(2, 6, 24, generator=torch.Generator().manual_seed(2))
    with_prior = image_unet(sample, timestep, text_tokens=text, image_prior_tokens=tokens)
    assert (with_prior - expected).abs().max() > 1e-3


def test_unet_config_must_match_the_sd_unet(sd_dir, unet_config) -> None:
    sd_unet = UNet2DConditionModel.from_pretrained(sd_dir / "unet")
    with pytest.raises(ValueError, match="cross_attention_dim: ours 32, SD 24"):
        image_unet_from_sd(sd_unet, replace(unet_config, cross_attention_dim=32))
    with pytest.raises(ValueError, match="layers_per_block: ours 2, SD 1"):
        image_unet_from_sd(sd_unet, replace(unet_config, layers_per_block=2))


@torch.no_grad()
def test_sd_initialised_model_inflates_to_the_same_prediction_per_frame(sd_dir, unet_config) -> None:
    sd_unet = UNet2DConditionModel.from_pretrained(sd_dir / "unet").eval()
    image_unet, steps = image_unet_from_sd(sd_unet, unet_config)
    assert [step.parameter for step in steps][0] == "class_embedding.weight"
    sequence = SequenceUNet.from_image_unet(image_unet, SequenceUNetConfig.tiny()).eval()
    sample, timestep, text = _inputs(batch=1)
    frames = 4
    clip = sample[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()  # a static clip: KA keys = self
    out = sequence(clip, timestep, text_tokens=text, class_labels=torch.tensor([3]))
    expected = sd_unet(sample, timestep, encoder_hidden_states=text).sample
    assert out.shape == (1, 4, frames, 8, 8)
    for frame in range(frames):
        torch.testing.assert_close(out[:, :, frame], expected, rtol=1e-4, atol=1e-5)
