"""Stage-2 sequence UNet: inflation identity, KA / MFA semantics, stage-2 trainables, ablations, save/load."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from generator.attention import FrameContext, SequenceSelfAttnProcessor, rows_with_image_prior
from generator.config import ImageUNetConfig, SequenceUNetConfig
from generator.image_unet import ImageUNet, build_image_unet
from generator.pathways import PathwayIndex, sample_pathways, straight_pathways
from generator.sequence_unet import SequenceUNet
from generator.sequential_attention import SequentialAttention

DIM = 24
B, F, H, W = 2, 3, 8, 8
PIXELS = 8 * H


@pytest.fixture(scope="module")
def image_unet() -> ImageUNet:
    torch.manual_seed(0)
    return ImageUNet.build(ImageUNetConfig.tiny(num_classes=3)).eval()


def _conditions(seed: int = 1) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {
        "text_tokens": torch.randn(B, 5, DIM),
        "class_labels": torch.tensor([0, 2]),
        "image_prior_tokens": torch.randn(B, 6, DIM),
    }


def _random_motion(seed: int = 2) -> tuple[torch.Tensor, list[torch.Tensor]]:
    rng = np.random.default_rng(seed)
    coarse = rng.normal(scale=10.0, size=(B, F, 2, H, W)).astype(np.float32)
    field = torch.from_numpy(np.repeat(np.repeat(coarse, 8, axis=3), 8, axis=4))
    field[:, 0] = 0
    return field, [sample_pathways(field[i], m=8, seed=i) for i in range(B)]


# The zero-initialised output projections of the two SA forms ("transformer", "attention").
SA_OUTPUT = ("sequential.proj_out.", "sequential.attention.to_out.0.")
SA_FORMS = ("attention", "transformer")


def _randomise_new_parameters(model: SequenceUNet) -> None:
    """Move the zero-initialised stage-2 parameters away from zero, as training would."""
    torch.manual_seed(5)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(f"{output}weight" in name for output in SA_OUTPUT) or name.endswith("mfa_gate"):
                param.uniform_(0.2, 0.5)
            elif name.endswith("conv_in.motion_weight"):
                param.normal_(std=0.05)


@pytest.mark.parametrize("form", SA_FORMS)
def test_inflated_unet_reproduces_image_unet_on_identical_frames(image_unet: ImageUNet, form: str) -> None:
    model = SequenceUNet.from_image_unet(
        image_unet, SequenceUNetConfig.tiny(sequential_attention=form)
    ).eval()
    zero_init = [n for n, _ in model.named_parameters() if any(o in n for o in SA_OUTPUT)]
    assert len(zero_init) == 2 * len(model.spatio_sequential_transformers())  # weight and bias of each SA
    for name, param in model.named_parameters():
        if name in zero_init or name.endswith(("mfa_gate", "motion_weight")):
            assert not param.any(), name  # zero-init survived loading the 2D weights
    conditions = _conditions()
    frame = torch.randn(B, 4, H, W)
    clip = frame[:, :, None].expand(-1, -1, F, -1, -1).contiguous()
    field, pathways = _random_motion()
    timestep = torch.tensor([20, 700])
    with torch.no_grad():
        expected = image_unet(frame, timestep, **conditions)
        zero_motion = model(clip, timestep, **conditions, motion_field=torch.zeros(B, F, 2, PIXELS, PIXELS))
        moving = model(clip, timestep, **conditions, motion_field=field, pathways=pathways)
    assert zero_motion.shape == (B, 4, F, H, W)
    for f in range(F):
        assert (zero_motion[:, :, f] - expected).abs().max() <= 1e-5
        assert (moving[:, :, f] - expected).abs().max() <= 1e-5


def _attention(seed: int = 0) -> Attention:
    torch.manual_seed(seed)
    return Attention(query_dim=16, heads=2, dim_head=8, out_bias=True)


def _heads_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int = 2) -> torch.Tensor:
    out = []
    for h in range(heads):
        cols = slice(h * q.shape[-1] // heads, (h + 1) * q.shape[-1] // heads)
        weights = torch.softmax(
            q[..., cols] @ k[..., cols].transpose(-1, -2) / math.sqrt(q.shape[-1] // heads), dim=-1
        )
        out.append(weights @ v[..., cols])
    return torch.cat(out, dim=-1)


def test_key_frame_attention_uses_first_and_previous_frame() -> None:
    attn = _attention()
    attn.set_processor(SequenceSelfAttnProcessor(key_frame=True, motion_field_attention=False))
    frames, tokens = 5, 6
    context = FrameContext(num_frames=frames, pathways=None)
    x = torch.randn(2 * frames, tokens, 16)
    with torch.no_grad():
        out = attn(x, frame_context=context)
        # by hand, clip 0 frame l=3 (0-based): keys/values from frames 0 and 2
        keys = torch.cat([x[0], x[2]])
        by_hand = attn.to_out[0](_heads_attention(attn.to_q(x[3]), attn.to_k(keys), attn.to_v(keys)))
        assert torch.allclose(out[3], by_hand, atol=1e-5)
        first = torch.cat([x[0], x[0]])  # frame 0 attends to [frame 0 || frame 0]
        by_hand_first = attn.to_out[0](_heads_attention(attn.to_q(x[0]), attn.to_k(first), attn.to_v(first)))
        assert torch.allclose(out[0], by_hand_first, atol=1e-5)

        perturbed = x.clone()
        perturbed[2] += torch.randn(tokens, 16)  # clip 0, frame index 2 ("frame 3")
        changed = (attn(perturbed, frame_context=context) - out).abs().amax(dim=(1, 2))
    assert changed[2] > 1e-3 and changed[3] > 1e-3  # itself and the next frame (its l-1)
    assert changed[[0, 1, 4]].max() == 0  # earlier frames and frame l+2 do not see it
    assert changed[frames:].max() == 0  # the other clip neither


def test_key_frame_attention_in_the_unet_looks_only_backwards(image_unet: ImageUNet) -> None:
    cfg = SequenceUNetConfig.tiny(use_sa=False, use_mfa=False)
    model = SequenceUNet.from_image_unet(image_unet, cfg).eval()
    per_frame = SequenceUNet.from_image_unet(image_unet, replace(cfg, use_ka=False)).eval()
    torch.manual_seed(3)
    clip = torch.randn(1, 4, 4, H, W)
    perturbed = clip.clone()
    perturbed[:, :, 2] += torch.randn(1, 4, H, W)
    conditions = {k: v[:1] for k, v in _conditions().items()}
    with torch.no_grad():
        delta = (
            (model(perturbed, 50, **conditions) - model(clip, 50, **conditions)).abs().amax(dim=(0, 1, 3, 4))
        )
        alone = per_frame(perturbed, 50, **conditions) - per_frame(clip, 50, **conditions)
        alone = alone.abs().amax(dim=(0, 1, 3, 4))
    assert delta[:2].max() == 0
    assert delta[2] > 1e-3 and delta[3] > 1e-3
    assert alone[[0, 1, 3]].max() == 0 and alone[2] > 1e-3  # plain self-attention mixes no frames


def test_motion_field_attention_attends_along_pathways() -> None:
    attn = _attention(1)
    processor = SequenceSelfAttnProcessor(key_frame=False, motion_field_attention=True)
    attn.set_processor(processor)
    frames, h, w = 3, 2, 2
    tokens = h * w
    field = np.zeros((frames, 2, h * 8, w * 8), dtype=np.float32)
    field[1:, 0] = 8  # one patch to the right per frame
    pathways = sample_pathways(field, m=8, seed=0)
    index = PathwayIndex.build([pathways], frames, h, w, torch.device("cpu"))
    context = FrameContext(num_frames=frames, pathways=index)
    x = torch.randn(frames, tokens, 16)
    with torch.no_grad():
        processor.mfa_gate.fill_(0.0)
        gate_0 = attn(x, frame_context=context)
        plain = attn.to_out[0](_heads_attention(attn.to_q(x), attn.to_k(x), attn.to_v(x)))
        assert torch.allclose(gate_0, plain, atol=1e-5)  # per-frame self-attention, MFA gated off

        processor.mfa_gate.fill_(1.0)
        out = attn(x, frame_context=context).reshape(frames * tokens, 16)
        # MFA runs on the first attention's output before to_out, with Q = K = V = that output (Eq. 4)
        first = _heads_attention(attn.to_q(x), attn.to_k(x), attn.to_v(x)).reshape(frames * tokens, 16)
        for row in pathways:
            members = row[row >= 0]
            along = _heads_attention(first[members], first[members], first[members])
            assert torch.allclose(out[members], attn.to_out[0](along), atol=1e-5)
        with pytest.raises(AttributeError):
            processor.to_q  # noqa: B018  MFA owns no projections of its own: only the gate
        assert [name for name, _ in processor.named_parameters()] == ["mfa_gate"]

        with pytest.raises(ValueError, match="does not match 1 clips of 3 x 16 tokens"):
            attn(torch.randn(frames, 4 * tokens, 16), frame_context=context)


def test_pathways_steer_the_unet_once_mfa_is_trained(image_unet: ImageUNet) -> None:
    model = SequenceUNet.from_image_unet(image_unet, SequenceUNetConfig.tiny()).eval()
    _randomise_new_parameters(model)
    torch.manual_seed(4)
    clip = torch.randn(B, 4, F, H, W)
    field, pathways = _random_motion()
    with torch.no_grad():
        straight = model(clip, 10, **_conditions(), motion_field=field)
        explicit = model(clip, 10, **_conditions(), motion_field=field, pathways=[None, None])
        steered = model(clip, 10, **_conditions(), motion_field=field, pathways=pathways)
    assert torch.equal(straight, explicit)  # None = straight pathways
    assert (steered - straight).abs().max() > 1e-4


_STAGE2_TRAINABLE = re.compile(
    r"\.sequential\."
    r"|\.spatial\.transformer_blocks\.\d+\.attn1\.(to_q|to_k|to_v|to_out\.0|processor)\."
    r"|\.spatial\.transformer_blocks\.\d+\.attn1\.processor\.mfa_gate$"
    r"|\.spatial\.transformer_blocks\.\d+\.attn2\.(to_q|processor\.to_q_img)\."
    r"|^motion_encoder\.|^unet\.conv_in\.motion_weight$"
)

ABLATIONS = {
    "full (SKM, C+T+I+MF)": {},
    "inflation only": {"use_sa": False, "use_ka": False, "use_mfa": False},
    "Ours-S": {"use_ka": False, "use_mfa": False},
    "transformer SA": {"sequential_attention": "transformer"},
    "Ours-SK": {"use_mfa": False},
    "MFA without KA": {"use_ka": False},
    "no motion field": {"use_motion": False},
    "no image prior": {"use_image_prior": False},
    "no text": {"use_text": False},
    "no class": {"use_class": False},
    "class only": {"use_text": False, "use_image_prior": False, "use_motion": False},
}


@pytest.mark.parametrize("flags", ABLATIONS.values(), ids=ABLATIONS.keys())
def test_stage2_gradients_reach_exactly_the_trainable_parts(
    image_unet: ImageUNet, flags: dict[str, bool]
) -> None:
    cfg = SequenceUNetConfig.tiny(**flags)
    model = SequenceUNet.from_image_unet(image_unet, cfg)
    _randomise_new_parameters(model)
    trainable = {id(p) for p in model.freeze_for_stage2()}
    conditions = _conditions()
    inputs: dict[str, object] = {
        "text_tokens": conditions["text_tokens"] if cfg.use_text else None,
        "class_labels": conditions["class_labels"] if cfg.use_class else None,
        "image_prior_tokens": conditions["image_prior_tokens"] if cfg.use_image_prior else None,
    }
    field, pathways = _random_motion()
    if cfg.use_motion:
        inputs["motion_field"] = field
    if cfg.use_mfa:
        inputs["pathways"] = pathways
    torch.manual_seed(6)
    out = model(torch.randn(B, 4, F, H, W), torch.tensor([3, 900]), **inputs)
    assert out.shape == (B, 4, F, H, W)
    out.square().mean().backward()

    for name, param in model.named_parameters():
        expected = bool(_STAGE2_TRAINABLE.search(name))
        full_resolution = name.startswith(("unet.down_blocks.0.", "unet.up_blocks.1."))
        if (
            ".attn1." in name
            and ".sequential." not in name
            and not (cfg.use_ka or cfg.use_mfa and full_resolution)
        ):
            expected = False
        if not cfg.use_text and ".attn2.to_q." in name:
            expected = False
        assert (id(param) in trainable) == expected, name
        assert param.requires_grad == expected, name
        if expected:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    gates = [n for n, _ in model.named_parameters() if n.endswith("mfa_gate")]
    assert len(gates) == (3 if cfg.use_mfa else 0)  # full latent resolution only: down 0 (1), up 1 (2)
    assert all(n.startswith(("unet.down_blocks.0.", "unet.up_blocks.1.")) for n in gates)
    if cfg.use_sa:
        assert any(".sequential." in n for n, p in model.named_parameters() if id(p) in trainable)
    assert (model.motion_encoder is not None) == cfg.use_motion


def test_gradient_checkpointing_matches(image_unet: ImageUNet) -> None:
    model = SequenceUNet.from_image_unet(image_unet, SequenceUNetConfig.tiny())
    _randomise_new_parameters(model)
    model.freeze_for_stage2()
    torch.manual_seed(7)
    clip = torch.randn(B, 4, F, H, W)
    field, pathways = _random_motion()

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        out = model(clip, 100, **_conditions(), motion_field=field, pathways=pathways)
        out.square().mean().backward()
        sa = next(p for n, p in model.named_parameters() if ".sequential." in n and n.endswith("to_q.weight"))
        return out.detach(), sa.grad.clone()

    plain_out, plain_grad = run()
    model.enable_gradient_checkpointing()
    assert all(t.gradient_checkpointing for t in model.spatio_sequential_transformers())
    ckpt_out, ckpt_grad = run()
    assert torch.allclose(plain_out, ckpt_out, atol=1e-6)
    assert torch.allclose(plain_grad, ckpt_grad, atol=1e-6)


def test_authors_sequential_attention_mixes_frames_at_one_position_only() -> None:
    """Fig. 5a: a patch attends to the patches at its own position across frames, nothing else."""
    torch.manual_seed(9)
    sa = SequentialAttention(channels=8, num_attention_heads=2, attention_head_dim=4).eval()
    with torch.no_grad():
        sa.attention.to_out[0].weight.normal_()
        x = torch.randn(2 * F, 8, 3, 3)
        base = sa(x, num_frames=F, return_dict=False)[0]
        nudged = x.clone()
        nudged[F + 1, :, 2, 0] += torch.randn(8)  # clip 1, frame 1, position (2, 0)
        moved = (sa(nudged, num_frames=F, return_dict=False)[0] - base).abs().amax(dim=1) > 1e-6
    expected = torch.zeros(2 * F, 3, 3, dtype=torch.bool)
    expected[F : 2 * F, 2, 0] = True  # every frame of clip 1 at that position
    assert torch.equal(moved, expected)
    assert sum(p.numel() for p in sa.parameters()) == 2 * 8 + 4 * 8 * 8 + 8  # LayerNorm, q/k/v/out, out bias


def test_a_model_saved_without_the_sa_form_loads_as_the_temporal_transformer(
    image_unet: ImageUNet, tmp_path: Path
) -> None:
    model = SequenceUNet.from_image_unet(
        image_unet, SequenceUNetConfig.tiny(sequential_attention="transformer")
    )
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["sequential_attention"]  # as written before the setting existed
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = SequenceUNet.from_pretrained(tmp_path)
    assert loaded.settings.sequential_attention == "transformer"
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert SequenceUNetConfig().sequential_attention == "attention"  # new models: the authors' form
    with pytest.raises(ValueError, match="sequential_attention must be one of"):
        SequenceUNetConfig(sequential_attention="conv")
    with pytest.raises(ValueError, match="sa_num_layers applies to sequential_attention='transformer'"):
        SequenceUNetConfig(sa_num_layers=2)


def test_save_pretrained_round_trip(image_unet: ImageUNet, tmp_path: Path) -> None:
    cfg = SequenceUNetConfig.tiny(sequential_attention="transformer", sa_num_layers=2)
    model = SequenceUNet.from_image_unet(image_unet, cfg).eval()
    _randomise_new_parameters(model)
    model.save_pretrained(tmp_path)
    loaded = SequenceUNet.from_pretrained(tmp_path).eval()
    assert loaded.settings == cfg
    torch.manual_seed(8)
    clip = torch.randn(B, 4, F, H, W)
    field, pathways = _random_motion()
    with torch.no_grad():
        a = model(clip, torch.tensor([1, 2]), **_conditions(), motion_field=field, pathways=pathways)
        b = loaded(clip, torch.tensor([1, 2]), **_conditions(), motion_field=field, pathways=pathways)
    assert torch.equal(a, b)


def test_input_errors_name_the_field(image_unet: ImageUNet) -> None:
    model = SequenceUNet.from_image_unet(image_unet, SequenceUNetConfig.tiny(use_mfa=False)).eval()
    clip = torch.zeros(B, 4, F, H, W)
    conditions = _conditions()
    with pytest.raises(ValueError, match=r"motion_field must have shape \(2, 3, 2, 64, 64\)"):
        model(clip, 1, **conditions, motion_field=torch.zeros(B, F, 2, 32, 32))
    with pytest.raises(ValueError, match="use_mfa=False"):
        model(clip, 1, **conditions, pathways=[straight_pathways(F, H, W)] * B)
    with pytest.raises(ValueError, match=r"timestep must be a scalar or have shape \(2,\)"):
        model(clip, torch.tensor([1, 2, 3]), **conditions)
    with pytest.raises(ValueError, match=r"sample must have shape \(B, C, F, h, w\)"):
        model(clip[:, :, 0], 1, **conditions)
    full = SequenceUNet.from_image_unet(image_unet, SequenceUNetConfig.tiny())
    with pytest.raises(ValueError, match="one entry per clip"):
        full(clip, 1, **conditions, pathways=[None])
    no_branch = build_image_unet(replace(ImageUNetConfig.tiny(), use_image_prior=False, use_class=False))
    with pytest.raises(ValueError, match="no image-prior branch"):
        SequenceUNet.from_image_unet(no_branch, SequenceUNetConfig.tiny(use_class=False))
    with pytest.raises(ValueError, match="no class embedding"):
        SequenceUNet.from_image_unet(no_branch, SequenceUNetConfig.tiny(use_image_prior=False))


# ------------------------------------------------------------------------------ prepared conditions


def _trained_model(image_unet: ImageUNet) -> SequenceUNet:
    model = SequenceUNet.from_image_unet(image_unet, SequenceUNetConfig.tiny()).eval()
    _randomise_new_parameters(model)
    return model


def _guided_batch() -> dict[str, object]:
    """Two clips with every condition, then their unconditional rows (null image prior, zero motion)."""
    conditions = _conditions()
    field, pathways = _random_motion()
    image = conditions["image_prior_tokens"]
    return {
        "text_tokens": conditions["text_tokens"].repeat(2, 1, 1),
        "class_labels": torch.tensor([0, 2, 3, 3]),
        "image_prior_tokens": torch.cat([image, torch.zeros_like(image)]),
        "motion_field": torch.cat([field, torch.zeros_like(field)]),
        "pathways": pathways + [None, None],
    }


def test_prepared_conditions_serve_every_step_like_fresh_conditions(image_unet: ImageUNet) -> None:
    model = _trained_model(image_unet)
    batch = _guided_batch()
    torch.manual_seed(3)
    with torch.no_grad():
        prepared = model.prepare_conditions(2 * B, F, H, W, torch.device("cpu"), **batch)  # type: ignore[arg-type]
        for timestep in (999, 400, 1):
            sample = torch.randn(2 * B, 4, F, H, W)
            fresh = model(sample, timestep, **batch)  # type: ignore[arg-type]
            assert torch.equal(model(sample, timestep, conditions=prepared), fresh)


def test_conditions_are_validated_and_projected_when_prepared(image_unet: ImageUNet) -> None:
    model = _trained_model(image_unet)
    with torch.no_grad():
        prepared = model.prepare_conditions(2 * B, F, H, W, torch.device("cpu"), **_guided_batch())  # type: ignore[arg-type]
    assert prepared.shape == (2 * B, F, H, W)
    assert (
        prepared.class_labels is not None
        and prepared.class_labels.tolist() == [0] * F + [2] * F + [3] * 2 * F
    )
    assert prepared.motion_term is not None and prepared.motion_term.shape == (2 * B * F, 32, H, W)
    assert prepared.context.pathways is not None and prepared.context.pathways.scatter.shape == (
        2 * B,
        F * H * W,
    )
    layers = [t.spatial.transformer_blocks[0].attn2 for t in model.spatio_sequential_transformers()]
    assert prepared.context.cross_keys is not None and len(prepared.context.cross_keys) == len(layers)
    for attn in layers:
        keys = prepared.context.cross_keys[attn.processor.layer]
        assert keys.text is not None and keys.text[0].shape == (2 * B, 5, attn.inner_dim)
        # the unconditional rows carry the null image prior: their image branch is skipped
        assert keys.image_rows == slice(0, B)
        assert keys.image is not None and keys.image[1].shape == (B, 6, attn.inner_dim)
    clip = torch.zeros(2 * B, 4, F, H, W)
    with pytest.raises(ValueError, match="not both"):
        model(clip, 1, text_tokens=_guided_batch()["text_tokens"], conditions=prepared)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"prepared conditions are for \(B, F, h, w\) = \(4, 3, 8, 8\)"):
        model(clip[:B], 1, conditions=prepared)


def test_skipping_the_null_image_prior_rows_is_exact(image_unet: ImageUNet) -> None:
    model = _trained_model(image_unet)
    batch = _guided_batch()
    torch.manual_seed(4)
    sample = torch.randn(2 * B, 4, F, H, W)
    with torch.no_grad():
        prepared = model.prepare_conditions(2 * B, F, H, W, torch.device("cpu"), **batch)  # type: ignore[arg-type]
        assert prepared.context.cross_keys is not None
        every_row = {
            processor.layer: processor.project(
                attn,
                batch["text_tokens"],
                batch["image_prior_tokens"],
                slice(None),  # type: ignore[arg-type]
            )
            for attn, processor in model._cross_attention_layers()
        }
        unskipped = replace(prepared, context=replace(prepared.context, cross_keys=every_row))
        skipped = model(sample, 500, conditions=prepared)
        assert torch.equal(skipped, model(sample, 500, conditions=unskipped))


def test_rows_with_image_prior_span_the_rows_that_are_not_null() -> None:
    tokens = torch.zeros(5, 3, 4)
    assert rows_with_image_prior(tokens) == slice(0, 0)
    tokens[1, 2, 0] = 1.0
    assert rows_with_image_prior(tokens) == slice(1, 2)
    tokens[3] = -2.0
    assert rows_with_image_prior(tokens) == slice(1, 4)  # row 2 is null but inside the span: computed


@pytest.mark.gpu
def test_sd_shaped_sequence_unet_on_gpu() -> None:
    """SD-1.4-shaped stage 2 at the paper's size (8 frames, 256x256 -> 32x32 latents) on CUDA."""
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    with device:
        image = ImageUNet.build(ImageUNetConfig(num_classes=3)).eval()
    model = SequenceUNet.from_image_unet(image, SequenceUNetConfig()).eval()
    assert model.device.type == "cuda"
    frames, size = 8, 32
    text, labels = torch.randn(1, 77, 768, device=device), torch.tensor([1], device=device)
    tokens = torch.randn(1, 1024, 768, device=device)
    frame = torch.randn(1, 4, size, size, device=device)
    clip = frame[:, :, None].expand(-1, -1, frames, -1, -1).contiguous()
    rng = np.random.default_rng(0)
    field = torch.from_numpy(
        rng.normal(scale=6.0, size=(1, frames, 2, 8 * size, 8 * size)).astype(np.float32)
    )
    pathways = [sample_pathways(field[0], m=8, seed=0)]
    with torch.no_grad():
        expected = image(frame, 500, text, labels, tokens)
        out = model(clip, 500, text, labels, tokens, field.to(device), pathways)
    assert (out - expected[:, :, None]).abs().max() <= 1e-4

    model.train()
    model.enable_gradient_checkpointing()
    trainable = model.freeze_for_stage2()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(clip, 500, text, labels, tokens, field.to(device), pathways).float().square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)
