"""Every registered classifier: tiny forward/backward, 1-channel stem, checkpoints, local weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from classify.checkpoint import load_classifier, save_classifier
from classify.registry import build_classifier, build_kwargs, list_classifiers


@pytest.mark.parametrize("name", list_classifiers())
def test_forward_backward_on_a_tiny_clip(name: str) -> None:
    torch.manual_seed(0)
    model = build_classifier(name, num_classes=3, tiny=True, frames=8, size=32)
    logits = model(torch.randn(2, 1, 8, 32, 32))
    assert logits.shape == (2, 3)
    logits.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_registry_has_the_papers_families() -> None:
    assert {"i3d", "r2plus1d", "csn", "resnet3d", "mvit_v2_s", "swin3d_t"} <= set(list_classifiers())


def test_stem_takes_the_requested_channels() -> None:
    model = build_classifier("swin3d_t", num_classes=2, in_channels=2, tiny=True)
    assert model(torch.randn(1, 2, 8, 32, 32)).shape == (1, 2)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 1, 8, 32, 32))


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="unknown name 'c3d'"):
        build_classifier("c3d", 2)
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier("i3d", 1)
    with pytest.raises(ValueError, match="needs `frames` and `size`"):
        build_classifier("mvit_v2_s", 2, tiny=True)


def test_mvit_builder_reproduces_torchvision_mvit_v2_s() -> None:
    from torchvision.models.video import mvit_v2_s

    ours = build_classifier("mvit_v2_s", 5, in_channels=3, frames=16, size=224).state_dict()
    reference = mvit_v2_s(weights=None, num_classes=5).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in reference.items()}


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_classifier("mvit_v2_s", 3, tiny=True, frames=8, size=32).eval()
    config = {
        "num_classes": 3,
        "in_channels": 1,
        "build_kwargs": build_kwargs("mvit_v2_s", tiny=True, frames=8, size=32),
        "normalization": {"mean": 0.45, "std": 0.225},
        "class_names": ["a", "b", "c"],
    }
    save_classifier(tmp_path / "clf", model, "mvit_v2_s", config)
    loaded, meta = load_classifier(tmp_path / "clf")
    clip = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))
    assert meta["name"] == "mvit_v2_s" and meta["class_names"] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="missing field"):
        save_classifier(tmp_path / "bad", model, "mvit_v2_s", {"num_classes": 3})
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_classifier(tmp_path / "nowhere")


def test_pretrained_rgb_stem_is_summed_and_head_left_fresh(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rgb = build_classifier("i3d", 400, in_channels=3, tiny=True)
    path = tmp_path / "rgb.safetensors"
    save_file({k: v.contiguous() for k, v in rgb.state_dict().items()}, str(path))
    gray = build_classifier("i3d", 2, tiny=True, pretrained_path=path)
    stem_key = "blocks.0.conv.weight"
    assert torch.allclose(gray.state_dict()[stem_key], rgb.state_dict()[stem_key].sum(dim=1, keepdim=True))
    assert torch.equal(
        gray.state_dict()["blocks.1.res_blocks.0.branch2.conv_a.weight"],
        rgb.state_dict()["blocks.1.res_blocks.0.branch2.conv_a.weight"],
    )
    assert gray.state_dict()["blocks.6.proj.weight"].shape == (2, 256)
    # A grey clip repeated on R, G, B gives the RGB network's stem output.
    clip = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        assert torch.allclose(
            gray.blocks[0].conv(clip), rgb.blocks[0].conv(clip.repeat(1, 3, 1, 1, 1)), atol=1e-5
        )
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        build_classifier("i3d", 2, tiny=True, pretrained_path=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="does not fit"):
        build_classifier("csn", 2, tiny=True, pretrained_path=path)
