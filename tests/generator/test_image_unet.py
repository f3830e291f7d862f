"""Stage-1 image UNet: decoupled cross-attention (Eq. 2), class embedding, SD-1.4 shape, save/load."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers.models.attention_processor import Attention
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from generator.attention import DecoupledCrossAttnProcessor, SpatialSelfAttnProcessor
from generator.config import ImageUNetConfig
from generator.image_unet import (
    ImageUNet,
    build_image_unet,
    init_image_branch_from_text,
    spatial_transformer_blocks,
)

DIM = 24  # ImageUNetConfig.tiny().cross_attention_dim


def _cross_attention(seed: int = 0) -> tuple[Attention, DecoupledCrossAttnProcessor]:
    torch.manual_seed(seed)
    attn = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=8, out_bias=True)
    processor = DecoupledCrossAttnProcessor(hidden_size=16, cross_attention_dim=12)
    attn.set_processor(processor)
    return attn, processor


def _by_hand(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int) -> torch.Tensor:
    outputs = []
    for head in range(heads):
        cols = slice(head * query.shape[-1] // heads, (head + 1) * query.shape[-1] // heads)
        q, k, v = query[..., cols], key[..., cols], value[..., cols]
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        outputs.append(weights @ v)
    return torch.cat(outputs, dim=-1)


def _image_branch_by_hand(processor: DecoupledCrossAttnProcessor, hidden: torch.Tensor, image: torch.Tensor):
    query = processor.to_q_img(hidden)
    return processor.to_out_img(_by_hand(query, processor.to_k_img(image), processor.to_v_img(image), 2))


def test_decoupled_cross_attention_is_text_plus_image_attention_by_hand() -> None:
    attn, processor = _cross_attention()
    hidden, text, image = torch.randn(2, 5, 16), torch.randn(2, 7, 12), torch.randn(2, 4, 12)
    with torch.no_grad():
        out = attn(hidden, encoder_hidden_states=text, image_prior_tokens=image)
        text_part = attn.to_out[0](_by_hand(attn.to_q(hidden), attn.to_k(text), attn.to_v(text), heads=2))
        expected = text_part + _image_branch_by_hand(processor, hidden, image)
    assert out.shape == (2, 5, 16)
    assert torch.allclose(out, expected, atol=1e-5)


def test_image_branch_has_its_own_query_and_output_projections() -> None:
    """Eq. 2: W^{Q_i} is not W^{Q_t}; changing the image query moves the output only with an image prior."""
    attn, processor = _cross_attention()
    hidden, text, image = torch.randn(1, 5, 16), torch.randn(1, 7, 12), torch.randn(1, 4, 12)
    with torch.no_grad():
        before = attn(hidden, encoder_hidden_states=text, image_prior_tokens=image)
        text_only = attn(hidden, encoder_hidden_states=text)
        processor.to_q_img.weight.mul_(3.0)
        processor.to_out_img.weight.mul_(2.0)
        after = attn(hidden, encoder_hidden_states=text, image_prior_tokens=image)
        assert torch.equal(attn(hidden, encoder_hidden_states=text), text_only)
    assert (after - before).abs().max() > 0.5


def test_zero_image_tokens_equal_no_image_tokens_and_real_tokens_change_output() -> None:
    attn, processor = _cross_attention()
    assert processor.to_k_img.bias is None and processor.to_v_img.bias is None
    hidden, text = torch.randn(2, 5, 16), torch.randn(2, 7, 12)
    with torch.no_grad():
        without = attn(hidden, encoder_hidden_states=text)
        zeros = attn(hidden, encoder_hidden_states=text, image_prior_tokens=torch.zeros(2, 4, 12))
        with_image = attn(hidden, encoder_hidden_states=text, image_prior_tokens=torch.randn(2, 4, 12))
        text_only = _by_hand(attn.to_q(hidden), attn.to_k(text), attn.to_v(text), heads=2)
    assert torch.equal(without, zeros)
    assert torch.allclose(without, attn.to_out[0](text_only), atol=1e-5)
    assert (with_image - without).abs().max() > 1e-3


def test_missing_text_contributes_zero_and_text_only_layer_refuses_image_tokens() -> None:
    attn, processor = _cross_attention()
    hidden, image = torch.randn(1, 5, 16), torch.randn(1, 4, 12)
    with torch.no_grad():
        image_only = attn(hidden, image_prior_tokens=image)
        expected = _image_branch_by_hand(processor, hidden, image)
        nothing = attn(hidden)
    assert torch.allclose(image_only, expected, atol=1e-5)
    assert torch.equal(nothing, torch.zeros(1, 5, 16))
    assert processor.to_out_img.bias is None  # so all-zero (dropped) image tokens contribute exactly zero
    attn.set_processor(DecoupledCrossAttnProcessor(16, 12, image_branch=False))
    with pytest.raises(ValueError, match="without the image-prior branch"):
        attn(hidden, image_prior_tokens=image)


def test_tiny_image_unet_processors_and_class_embedding() -> None:
    unet = build_image_unet(ImageUNetConfig.tiny(num_classes=5))
    assert isinstance(unet, UNet2DConditionModel)
    assert unet.class_embedding.weight.shape == (6, unet.time_embedding.linear_2.out_features)
    blocks = list(spatial_transformer_blocks(unet))
    assert len(blocks) == 7  # down 2 levels x 1, mid 1, up 2 levels x 2 (layers_per_block + 1)
    for _, block in blocks:
        assert isinstance(block.attn1.processor, SpatialSelfAttnProcessor)
        assert isinstance(block.attn2.processor, DecoupledCrossAttnProcessor)
    image_keys = [k for k in unet.state_dict() if re.search(r"\.processor\.to_(q|k|v|out)_img\.", k)]
    assert len(image_keys) == 4 * len(blocks)  # q, k, v, out weights (bias-free), saved with the UNet


def _inputs(batch: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {
        "sample": torch.randn(batch, 4, 8, 8),
        "timestep": torch.tensor([10, 500])[:batch],
        "text_tokens": torch.randn(batch, 5, DIM),
    }


def test_image_unet_conditions_change_the_prediction() -> None:
    torch.manual_seed(0)
    model = ImageUNet.build(ImageUNetConfig.tiny(num_classes=3)).eval()
    inputs = _inputs()
    image = torch.randn(2, 6, DIM)
    with torch.no_grad():
        base = model(**inputs)
        null_class = model(**inputs, class_labels=torch.tensor([3, 3]))
        class_1 = model(**inputs, class_labels=torch.tensor([1, 1]))
        zero_image = model(**inputs, image_prior_tokens=torch.zeros(2, 6, DIM))
        with_image = model(**inputs, image_prior_tokens=image)
    assert base.shape == (2, 4, 8, 8)
    assert torch.equal(base, null_class)  # class_labels None = the null class
    assert (class_1 - base).abs().max() > 1e-4
    assert torch.allclose(zero_image, base, atol=1e-6)  # zero tokens = no image prior, through the UNet
    assert (with_image - base).abs().max() > 1e-4


def test_image_unet_switches_and_input_errors() -> None:
    plain = ImageUNet.build(
        replace(ImageUNetConfig.tiny(), use_class=False, use_image_prior=False, use_text=False)
    )
    assert plain.unet.class_embedding is None
    assert all(not b.attn2.processor.image_branch for _, b in spatial_transformer_blocks(plain.unet))
    inputs = _inputs()
    text = inputs.pop("text_tokens")
    assert plain(**inputs).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="use_class=False"):
        plain(**inputs, class_labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="image-prior branch"):
        plain(**inputs, image_prior_tokens=torch.randn(2, 3, DIM))
    with pytest.raises(ValueError, match="use_text=False"):
        plain(**inputs, text_tokens=text)
    model = ImageUNet.build(ImageUNetConfig.tiny(num_classes=3))
    with pytest.raises(ValueError, match="text_tokens is required"):
        model(**inputs)
    with pytest.raises(ValueError, match=r"class_labels must lie in \[0, 3\]"):
        model(**inputs, text_tokens=text, class_labels=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="class_labels must be a LongTensor"):
        model(**inputs, text_tokens=text, class_labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"image_prior_tokens must have shape \(2, N, 24\)"):
        model(**inputs, text_tokens=text, image_prior_tokens=torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        ImageUNetConfig(num_classes=0)


def test_init_image_branch_from_text_copies_every_projection() -> None:
    unet = build_image_unet(ImageUNetConfig.tiny())
    init_image_branch_from_text(unet)
    for _, block in spatial_transformer_blocks(unet):
        processor = block.attn2.processor
        assert torch.equal(processor.to_q_img.weight, block.attn2.to_q.weight)
        assert torch.equal(processor.to_k_img.weight, block.attn2.to_k.weight)
        assert torch.equal(processor.to_v_img.weight, block.attn2.to_v.weight)
        assert torch.equal(processor.to_out_img.weight, block.attn2.to_out[0].weight)


def test_sd14_shaped_unet_parameter_count() -> None:
    # Built on the meta device: the real instantiation takes ~17 s and 3.5 GB on these CPUs.
    with torch.device("meta"):
        plain = build_image_unet(ImageUNetConfig(num_classes=3, use_class=False, use_image_prior=False))
        full = build_image_unet(ImageUNetConfig(num_classes=3))
    assert plain.config.block_out_channels == (320, 640, 1280, 1280)
    assert plain.config.cross_attention_dim == 768
    assert sum(p.numel() for p in plain.parameters()) == 859_520_964  # Stable Diffusion 1.4's UNet
    # + image branch per cross-attention of width w: K/V 2 x 768 x w, own query and output 2 x w x w
    # (16 layers: widths sum to 12,480, squares to 12,390,400) + 4 x 1280 class rows
    image_branch = 2 * 768 * 12_480 + 2 * 12_390_400
    assert sum(p.numel() for p in full.parameters()) == 859_520_964 + image_branch + 5_120


def test_image_unet_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ImageUNet.build(ImageUNetConfig.tiny()).eval()
    with torch.no_grad():
        for _, block in spatial_transformer_blocks(model.unet):
            block.attn2.processor.to_v_img.weight.normal_()
    model.save_pretrained(tmp_path)
    loaded = ImageUNet.from_pretrained(tmp_path).eval()
    assert loaded.settings == ImageUNetConfig.tiny()
    inputs = _inputs()
    image = torch.randn(2, 6, DIM)
    with torch.no_grad():
        assert torch.equal(
            model(**inputs, image_prior_tokens=image), loaded(**inputs, image_prior_tokens=image)
        )
