"""CLIP text conditioner: open_clip tokenizer, per-token states, image side, save/load, local checkpoints."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import open_clip
import pytest
import torch

from generator.text_encoder import CLIPTextConditioner, TextEncoderConfig


@pytest.fixture(scope="module")
def encoder() -> CLIPTextConditioner:
    torch.manual_seed(0)
    return CLIPTextConditioner(TextEncoderConfig.tiny()).eval()


def test_tokenize_uses_open_clip_bpe_offline(encoder) -> None:
    tokens = encoder.tokenize(["mild carotid plaque", ""])
    assert tokens.shape == (2, 77)
    assert tokens.dtype == torch.long
    sot, eot = 49406, 49407
    assert tokens[1, :3].tolist() == [sot, eot, 0]
    assert tokens[0, 0] == sot and eot in tokens[0].tolist()
    assert torch.equal(
        tokens, open_clip.tokenizer.SimpleTokenizer(context_length=77)(["mild carotid plaque", ""])
    )


def test_forward_is_per_token_final_layer_norm_states(encoder) -> None:
    tokens = encoder.tokenize(["smooth margin", "irregular margin"])
    with torch.no_grad():
        states = encoder(tokens)
        clip = encoder.clip
        x = clip.token_embedding(tokens) + clip.positional_embedding
        expected = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
    assert states.shape == (2, 77, encoder.width)
    assert encoder.width == 32
    torch.testing.assert_close(states, expected)


def test_states_are_causal_and_text_dependent(encoder) -> None:
    with torch.no_grad():
        states = encoder(encoder.tokenize(["smooth margin", "irregular margin"]))
    torch.testing.assert_close(states[0, 0], states[1, 0])
    assert not torch.allclose(states[0, 1], states[1, 1])


def test_pooled_text_and_grayscale_image_features(encoder) -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 40, 48), dtype=np.uint8)
    with torch.no_grad():
        text = encoder.encode_text(encoder.tokenize(["a", "b", "c"]), normalize=True)
        image = encoder.encode_image(frames, normalize=True)
    assert text.shape == (3, 16) and image.shape == (3, 16)
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(3))


def test_grayscale_frames_repeat_over_rgb_with_clip_normalisation(encoder) -> None:
    frames = np.random.default_rng(1).integers(0, 256, size=(2, 40, 48), dtype=np.uint8)
    pixels = encoder.preprocess_frames(frames)
    assert pixels.shape == (2, 3, 32, 32)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    gray = pixels * std + mean
    torch.testing.assert_close(gray[:, 1], gray[:, 0])
    torch.testing.assert_close(gray[:, 2], gray[:, 0])
    with pytest.raises(ValueError, match=r"frames must be uint8 \(B, H, W\)"):
        encoder.preprocess_frames(frames[0])


def test_save_and_load_round_trip(encoder, tmp_path) -> None:
    encoder.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "text_encoder_config.json").read_text())["architecture"] == "ViT-B-32"
    assert (tmp_path / "open_clip_model.safetensors").is_file()
    loaded = CLIPTextConditioner.from_pretrained(tmp_path).eval()
    tokens = encoder.tokenize(["fine-tuned text"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens), encoder(tokens))


def test_loading_saved_weights_does_not_warn_of_random_init(encoder, tmp_path, caplog) -> None:
    encoder.save_pretrained(tmp_path)
    with caplog.at_level(logging.INFO):
        CLIPTextConditioner.from_pretrained(tmp_path)
    assert not [r.message for r in caplog.records if "random" in r.message.lower()]
    with caplog.at_level(logging.INFO):
        CLIPTextConditioner(TextEncoderConfig.tiny())  # a fresh model is random, and open_clip says so
    assert any("initialized randomly" in r.message for r in caplog.records)


def test_local_open_clip_checkpoint_is_loaded(encoder, tmp_path) -> None:
    path = tmp_path / "clip.pt"
    torch.save({"state_dict": encoder.clip.state_dict()}, path)
    cfg = dataclasses.replace(TextEncoderConfig.tiny(), checkpoint_path=str(path))
    loaded = CLIPTextConditioner(cfg)
    for name, tensor in encoder.clip.state_dict().items():
        assert torch.equal(loaded.clip.state_dict()[name], tensor), name


def test_bad_inputs_name_the_field(encoder, tmp_path) -> None:
    with pytest.raises(ValueError, match="architecture 'not-a-clip' is not an open_clip built-in model"):
        TextEncoderConfig(architecture="not-a-clip")
    with pytest.raises(FileNotFoundError, match="checkpoint_path"):
        TextEncoderConfig(checkpoint_path=str(tmp_path / "missing.pt"))
    with pytest.raises(TypeError, match="texts must be a list of strings"):
        encoder.tokenize("one string")
    with pytest.raises(FileNotFoundError, match="not a saved text encoder directory"):
        CLIPTextConditioner.from_pretrained(tmp_path)
