"""VAE wrapper: config, [-1, 1] input range, posterior mean x scaling, frame chunking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.vae import VAEConfig, build_vae, decode_latents, encode_clips, to_uint8


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return build_vae(VAEConfig.tiny()).eval()


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(2, 3, 32, 32), dtype=np.uint8)


def test_default_config_is_the_authors_vae() -> None:
    cfg = VAEConfig()
    assert cfg.in_channels == 1
    assert cfg.block_out_channels == (128, 256, 512, 512)
    assert cfg.latent_channels == 4
    assert cfg.scaling_factor == pytest.approx(0.18215)
    assert cfg.downsampling_factor == 8


def test_tiny_vae_keeps_downsampling_8(vae) -> None:
    assert VAEConfig.tiny().downsampling_factor == 8
    assert vae.config.in_channels == 1 and vae.config.out_channels == 1
    assert vae.config.latent_channels == 4
    assert vae.config.scaling_factor == pytest.approx(0.18215)


def test_encode_returns_scaled_posterior_mean(vae, clips) -> None:
    latents = encode_clips(vae, clips, chunk_frames=4)
    assert latents.shape == (2, 3, 4, 4, 4)
    frame = torch.from_numpy(clips[1, 2]).float()[None, None] / 127.5 - 1.0
    with torch.no_grad():
        expected = vae.encode(frame).latent_dist.mean[0] * 0.18215
    torch.testing.assert_close(latents[1, 2], expected, atol=1e-5, rtol=1e-5)


def test_encode_is_deterministic_and_accepts_tensors(vae, clips) -> None:
    first = encode_clips(vae, clips, chunk_frames=2)
    second = encode_clips(vae, torch.from_numpy(clips), chunk_frames=2)
    assert torch.equal(first, second)


def test_chunked_encode_equals_unchunked(vae, clips) -> None:
    whole = encode_clips(vae, clips, chunk_frames=6)
    one_by_one = encode_clips(vae, clips, chunk_frames=1)
    uneven = encode_clips(vae, clips, chunk_frames=4)
    torch.testing.assert_close(one_by_one, whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(uneven, whole, atol=1e-5, rtol=1e-5)


def test_encode_processes_chunk_frames_at_a_time(vae, clips, monkeypatch) -> None:
    batch_sizes: list[int] = []
    original = vae.encode

    def recording_encode(x, *args, **kwargs):
        batch_sizes.append(x.shape[0])
        return original(x, *args, **kwargs)

    monkeypatch.setattr(vae, "encode", recording_encode)
    encode_clips(vae, clips, chunk_frames=4)
    assert batch_sizes == [4, 2]


def test_decode_shape_range_and_chunking(vae, clips) -> None:
    latents = encode_clips(vae, clips, chunk_frames=6)
    pixels = decode_latents(vae, latents, chunk_frames=6)
    assert pixels.shape == (2, 3, 32, 32)
    assert pixels.dtype == torch.float32
    assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0
    torch.testing.assert_close(decode_latents(vae, latents, chunk_frames=1), pixels, atol=1e-5, rtol=1e-5)


def test_to_uint8_maps_unit_range_to_bytes() -> None:
    out = to_uint8(torch.tensor([-1.5, -1.0, 0.0, 0.5, 1.0, 2.0]))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 191, 255, 255]


def test_rejects_non_uint8_clips(vae, clips) -> None:
    with pytest.raises(TypeError, match="clips must be uint8 pixels, got dtype torch.float32"):
        encode_clips(vae, clips.astype(np.float32) / 255.0)


def test_rejects_bad_shapes_and_chunk_sizes(vae, clips) -> None:
    with pytest.raises(ValueError, match=r"clips must have shape \(N, F, H, W\), got \(3, 32, 32\)"):
        encode_clips(vae, clips[0])
    with pytest.raises(ValueError, match="chunk_frames must be >= 1, got 0"):
        encode_clips(vae, clips, chunk_frames=0)
    with pytest.raises(ValueError, match=r"latents must have shape \(N, F, C, h, w\)"):
        decode_latents(vae, torch.zeros(3, 4, 4, 4))


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="norm_num_groups=32"):
        VAEConfig(block_out_channels=(8, 16))
    with pytest.raises(ValueError, match="scaling_factor must be positive"):
        VAEConfig(scaling_factor=0.0)
