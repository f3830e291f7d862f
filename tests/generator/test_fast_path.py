"""The fast sampling path on the CPU: batch sizing, batched == single clips, mixed precision, per-clip
cross-attention, conditions prepared once per batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention
from torch.utils.flop_counter import FlopCounterMode

from generator.attention import DecoupledCrossAttnProcessor, FrameContext
from generator.conditions import BankConditions
from generator.fast import (
    ClipMemory,
    FastPathSettings,
    FastSampler,
    clips_per_batch,
    even_batches,
    measure_clip_memory,
)
from generator.pathways import PathwayIndex
from generator.pipeline import CtrlGenAugPipeline, build_tiny_pipeline
from generator.sampling import SamplerSettings, SamplingCancelled, UNetDenoiser

GIB = 1 << 30
STEPS = SamplerSettings(steps=3)


@pytest.fixture(scope="module")
def pipeline() -> CtrlGenAugPipeline:
    return build_tiny_pipeline(num_classes=3, seed=0)


@pytest.fixture(scope="module")
def bank() -> BankConditions:
    rng = np.random.default_rng(5)
    return BankConditions(
        class_index=0,
        text="anechoic cyst",
        image_prior=rng.integers(0, 256, size=(32, 32), dtype=np.uint8),
        motion_field=(rng.standard_normal((8, 2, 32, 32)) * 4).astype(np.float32),
    )


# ------------------------------------------------------------------------------ batch sizing


def test_clips_per_batch_fills_the_budget_and_respects_the_cap() -> None:
    memory = ClipMemory(fixed_bytes=2 * GIB, per_clip_bytes=GIB)
    assert clips_per_batch(memory, 20 * GIB, 0.9, 64) == 16  # (18 - 2) GiB / 1 GiB
    assert clips_per_batch(memory, 20 * GIB, 1.0, 64) == 18
    assert clips_per_batch(memory, 20 * GIB, 0.9, 8) == 8
    assert clips_per_batch(memory, GIB, 0.9, 8) == 1  # never below one clip


def test_clip_memory_from_peaks() -> None:
    assert ClipMemory.from_peaks(3 * GIB, 4 * GIB) == ClipMemory(2 * GIB, GIB)
    assert ClipMemory.from_peaks(GIB, GIB // 2) == ClipMemory(GIB - 1, 1)
    assert ClipMemory.from_peaks(GIB, 3 * GIB) == ClipMemory(0, 2 * GIB)
    with pytest.raises(ValueError, match="per_clip_bytes"):
        ClipMemory(0, 0)


def test_even_batches_are_fewest_and_balanced() -> None:
    sizes = [len(b) for b in even_batches(10, 4)]
    assert sizes == [3, 4, 3]
    assert [len(b) for b in even_batches(8, 4)] == [4, 4]
    assert [len(b) for b in even_batches(3, 32)] == [3]
    assert [list(b) for b in even_batches(5, 2)] == [[0, 1], [2], [3, 4]]
    with pytest.raises(ValueError, match="count and largest"):
        even_batches(0, 4)


def test_fast_path_settings_are_validated_and_resolve_precision() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert FastPathSettings().autocast_dtype(cpu) is None
    assert FastPathSettings(precision="bf16").autocast_dtype(cpu) is torch.bfloat16
    assert FastPathSettings(precision="fp16").autocast_dtype(cuda) is torch.float16
    assert FastPathSettings(precision="fp32").autocast_dtype(cuda) is None
    for field, value in [
        ("precision", "int8"),
        ("max_clips_per_batch", 0),
        ("memory_fraction", 1.5),
        ("compile_mode", "fast"),
    ]:
        with pytest.raises(ValueError, match=field):
            FastPathSettings(**{field: value})  # type: ignore[arg-type]


def test_the_execution_record_says_how_clips_are_computed() -> None:
    import diffusers

    default = FastSampler(build_tiny_pipeline(seed=0)).execution
    assert default == {
        "device": "cpu",
        "precision": "fp32",
        "cast_unet": False,
        "channels_last": False,
        "compile_mode": None,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
    }
    settings = FastPathSettings(precision="bf16", cast_unet=True, channels_last=True)
    fast = FastSampler(build_tiny_pipeline(seed=0), settings).execution
    assert fast | {"precision": "fp32", "cast_unet": False, "channels_last": False} == default
    assert (fast["precision"], fast["cast_unet"], fast["channels_last"]) == ("bf16", True, True)


def test_cpu_batches_use_the_cap_and_memory_is_measured_on_cuda_only(pipeline, bank) -> None:
    assert FastSampler(pipeline, FastPathSettings(max_clips_per_batch=5)).batch_size(bank, STEPS) == 5
    with pytest.raises(ValueError, match="CUDA pipeline"):
        measure_clip_memory(pipeline, bank, STEPS, None, None)


# ------------------------------------------------------------------------------ batched == single


def test_batched_clips_equal_clips_sampled_alone(pipeline, bank) -> None:
    other = BankConditions(class_index=2, text="solid nodule")
    banks, seeds = [bank, other, bank], [11, 12, 13]
    calls: list[tuple[int, int]] = []
    sampler = FastSampler(pipeline, FastPathSettings(max_clips_per_batch=2))
    batched = sampler.sample(banks, seeds, STEPS, progress=lambda i, n: calls.append((i, n)))
    alone = np.concatenate([pipeline.sample([b], [s], STEPS) for b, s in zip(banks, seeds, strict=True)])
    assert batched.shape == (3, 8, 32, 32) and batched.dtype == np.uint8
    difference = np.abs(batched.astype(int) - alone.astype(int))
    assert difference.max() <= 1 and difference.mean() < 1e-3
    assert calls == [(i, 6) for i in range(1, 7)]  # two batches of 3 steps, counted as one run


def test_fast_sampler_passes_cancellation_and_checks_lengths(pipeline, bank) -> None:
    sampler = FastSampler(pipeline, FastPathSettings(max_clips_per_batch=2))
    with pytest.raises(SamplingCancelled):
        sampler.sample([bank, bank], [0, 1], STEPS, should_cancel=lambda: True)
    with pytest.raises(ValueError, match="same length"):
        sampler.sample([bank], [0, 1], STEPS)
    with pytest.raises(ValueError, match="must not be empty"):
        sampler.sample([], [], STEPS)


def test_the_next_batch_is_prepared_on_a_helper_thread_while_the_current_one_denoises(
    pipeline, bank, monkeypatch
) -> None:
    events: list[tuple[str, int, str]] = []
    second_prepare_started = threading.Event()
    prepare, denoise_prepared = pipeline.prepare, pipeline.denoise_prepared

    def recorded_prepare(banks, seeds, sampler):  # type: ignore[no-untyped-def]
        events.append(("prepare", seeds[0], threading.current_thread().name))
        if seeds[0] == 22:
            second_prepare_started.set()
        return prepare(banks, seeds, sampler)

    def recorded_denoise(batch, *args):  # type: ignore[no-untyped-def]
        first = len([e for e in events if e[0] == "denoise"]) == 0
        events.append(("denoise", 0, threading.current_thread().name))
        if first:  # the first batch may only finish once the second is being prepared
            assert second_prepare_started.wait(timeout=30)
        return denoise_prepared(batch, *args)

    monkeypatch.setattr(pipeline, "prepare", recorded_prepare)
    monkeypatch.setattr(pipeline, "denoise_prepared", recorded_denoise)
    fast = FastSampler(pipeline, FastPathSettings(max_clips_per_batch=2))
    banks, seeds = [bank] * 4, [20, 21, 22, 23]
    batches = list(fast.batches(banks, seeds, STEPS))

    assert [list(positions) for positions, _ in batches] == [[0, 1], [2, 3]]
    assert all(clips.shape == (2, 8, 32, 32) and clips.dtype == np.uint8 for _, clips in batches)
    kinds = [e[0] for e in events]
    assert kinds[0] == "prepare" and kinds.count("prepare") == kinds.count("denoise") == 2
    assert kinds[-1] == "denoise"  # batch 2 was prepared while batch 1 was still denoising
    assert {e[2].split("_")[0] for e in events if e[0] == "prepare"} == {"prepare-batch"}
    assert {e[2] for e in events if e[0] == "denoise"} == {threading.current_thread().name}
    monkeypatch.undo()
    np.testing.assert_array_equal(np.concatenate([c for _, c in batches]), fast.sample(banks, seeds, STEPS))


def test_a_batch_that_cannot_be_prepared_fails_the_iteration(pipeline, bank) -> None:
    fast = FastSampler(pipeline, FastPathSettings(max_clips_per_batch=1))
    batches = fast.batches([bank, bank], [0, -1], STEPS)
    positions, _ = next(batches)
    assert list(positions) == [0]
    with pytest.raises(ValueError, match=r"seeds\[0\] must be an integer"):
        next(batches)


# ------------------------------------------------------------------------------ mixed precision


def test_bf16_autocast_keeps_float32_latents_close_to_fp32(pipeline, bank) -> None:
    reference = pipeline.sample_latents([bank], [3], STEPS)
    mixed = pipeline.sample_latents([bank], [3], STEPS, autocast=torch.bfloat16)
    assert mixed.dtype == torch.float32 and next(pipeline.unet.parameters()).dtype == torch.float32
    relative = (mixed - reference).norm() / reference.norm()
    assert 0 < relative < 0.05


def test_a_unet_cast_to_bf16_samples_without_autocast_close_to_fp32(bank) -> None:
    """`cast_unet`: bf16 weights, no autocast around the UNet (the VAE stays fp32 under autocast)."""
    reference_pipeline, cast = build_tiny_pipeline(seed=0), build_tiny_pipeline(seed=0)
    sampler = FastSampler(cast, FastPathSettings(precision="bf16", cast_unet=True))
    assert cast.unet.dtype == torch.bfloat16 and cast.vae.dtype == torch.float32
    assert (sampler.unet_autocast, sampler.autocast) == (None, torch.bfloat16)
    reference = reference_pipeline.sample_latents([bank], [3], STEPS)
    latents = cast.sample_latents([bank], [3], STEPS)
    assert latents.dtype == torch.float32
    assert 0 < (latents - reference).norm() / reference.norm() < 0.05
    clips = sampler.sample([bank, bank], [3, 4], STEPS)
    expected = reference_pipeline.sample([bank, bank], [3, 4], STEPS)
    assert clips.dtype == np.uint8 and np.abs(clips.astype(int) - expected.astype(int)).mean() < 2
    fp32 = build_tiny_pipeline(seed=0)
    FastSampler(fp32, FastPathSettings(precision="fp32", cast_unet=True))
    assert fp32.unet.dtype == torch.float32  # nothing to cast to in fp32


def test_conditions_are_prepared_once_per_batch_not_at_every_step(pipeline, bank, monkeypatch) -> None:
    """The motion encoder, conv_in's motion term, the pathway index and the cross-attention keys/values
    depend on the conditions alone: one batch of 4 guided steps computes them once, the UNet body 4 times."""
    unet = pipeline.unet
    attn2 = unet.spatio_sequential_transformers()[0].spatial.transformer_blocks[0].attn2
    calls: dict[str, int] = {}

    def count(name: str, module: torch.nn.Module) -> None:
        calls[name] = 0
        module.register_forward_hook(lambda *_: calls.__setitem__(name, calls[name] + 1))

    for name, module in {
        "motion encoder": unet.motion_encoder,
        "text keys": attn2.to_k,
        "image keys": attn2.processor.to_k_img,
        "queries": attn2.to_q,
    }.items():
        count(name, module)
    built = []
    monkeypatch.setattr(PathwayIndex, "build", _recording(PathwayIndex.build, built))
    try:
        pipeline.sample_latents([bank, bank], [0, 1], SamplerSettings(steps=4))
    finally:
        for module in (unet.motion_encoder, attn2.to_k, attn2.processor.to_k_img, attn2.to_q):
            module._forward_hooks.clear()
    assert calls == {"motion encoder": 1, "text keys": 1, "image keys": 1, "queries": 4}
    assert len(built) == 1


def _recording(method, calls: list[object]):  # type: ignore[no-untyped-def]
    def record(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        return method(*args, **kwargs)

    return classmethod(lambda cls, *args, **kwargs: record(*args, **kwargs))


def test_a_prepared_step_leaves_out_the_condition_work(pipeline, bank) -> None:
    """A guided step with prepared conditions costs the UNet body only: the first step of a batch also
    prepares (motion encoder, conv_in's motion term, cross-attention keys/values), later ones do not."""
    cond = pipeline.conditions.encode([bank], [0])
    both = cond.concat(pipeline.conditions.unconditional(cond, pipeline.info.conditions))
    denoiser = UNetDenoiser(pipeline.unet)
    sample = torch.randn(2, *pipeline.latent_shape)
    with torch.no_grad():
        with FlopCounterMode(display=False, depth=None) as first:
            denoiser(sample, torch.tensor(500), both)
        with FlopCounterMode(display=False, depth=None) as later:
            denoiser(sample, torch.tensor(400), both)

    def totals(counter: FlopCounterMode) -> dict[str, int]:
        """FLOPs per top-level module: work outside the UNet's own call is named by its module."""
        return {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items() if "." not in name}

    step, prepared_step = totals(first), totals(later)
    assert set(prepared_step) == {"Global", "SequenceUNet"}  # the step runs the UNet body only
    assert {"MotionEncoder", "Linear"} <= set(step)  # preparing: motion encoder, key/value projections
    assert prepared_step["SequenceUNet"] == step["SequenceUNet"] == prepared_step["Global"]
    preparing = step["Global"] - step["SequenceUNet"]
    assert preparing >= step["MotionEncoder"] + step["Linear"] > 0


def test_channels_last_unet_samples_what_the_default_layout_samples(bank) -> None:
    """Channels-last changes how convolution weights and activations are laid out, not what they are."""
    default, nhwc = build_tiny_pipeline(seed=0), build_tiny_pipeline(seed=0)
    FastSampler(nhwc, FastPathSettings(channels_last=True))
    kernels = [p for p in nhwc.unet.parameters() if p.ndim == 4]
    assert len(kernels) > 10
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert all(not p.is_contiguous() for p in kernels if p.shape[-1] > 1)  # 1x1 kernels: the same either way
    assert dict(nhwc.unet.named_parameters()).keys() == dict(default.unet.named_parameters()).keys()
    reference = default.sample_latents([bank, bank], [3, 4], STEPS)
    latents = nhwc.sample_latents([bank, bank], [3, 4], STEPS)
    assert latents.is_contiguous()
    assert (latents - reference).norm() / reference.norm() < 1e-5


# ------------------------------------------------------------------------------ torch.compile


def _moving_bank(seed: int, motion_px: float, image_prior: bool = True) -> BankConditions:
    rng = np.random.default_rng(seed)
    return BankConditions(
        class_index=seed % 3,
        text=f"bank {seed}",
        image_prior=rng.integers(0, 256, size=(32, 32), dtype=np.uint8) if image_prior else None,
        motion_field=(rng.standard_normal((8, 2, 32, 32)) * motion_px).astype(np.float32),
    )


def test_a_compiled_unet_equals_eager_and_stops_recompiling_once_it_has_seen_a_jobs_shapes() -> None:
    """Dynamo (eager backend: graph capture without code generation) over jobs whose batches differ in
    pathway count, image priors and size: new graphs while new structures appear (sizes that change
    turn dynamic), none for a job whose structure and batch size were seen (FastSampler's even batches
    give a job at most two sizes)."""
    import torch._dynamo

    eager, compiled = build_tiny_pipeline(seed=0), build_tiny_pipeline(seed=0)
    compiled.unet.unet.compile(backend="eager")
    jobs = [
        ([_moving_bank(1, 1.0), _moving_bank(2, 1.0)], [0, 1]),  # still: one pathway per patch
        ([_moving_bank(3, 20.0), _moving_bank(4, 20.0)], [2, 3]),  # moving: more pathways
        ([_moving_bank(5, 20.0, image_prior=False)] * 2, [4, 5]),  # no image prior: no image branch
        ([_moving_bank(6, 1.0)] * 3, [6, 7, 8]),  # another batch size
    ]
    repeats = [  # new conditions and pathway counts, in structures and batch sizes seen above
        ([_moving_bank(7, 40.0), _moving_bank(8, 5.0)], [9, 10]),
        ([_moving_bank(9, 30.0, image_prior=False)] * 2, [11, 12]),
        ([_moving_bank(10, 30.0)] * 3, [13, 14, 15]),
    ]
    sampler = SamplerSettings(steps=2)
    torch._dynamo.reset()
    try:
        for banks, seeds in jobs:
            np.testing.assert_array_equal(
                compiled.sample_latents(banks, seeds, sampler).numpy(),
                eager.sample_latents(banks, seeds, sampler).numpy(),
            )
        with torch._dynamo.config.patch(error_on_recompile=True):
            for banks, seeds in repeats:
                compiled.sample_latents(banks, seeds, sampler)
    finally:
        torch._dynamo.reset()


# ------------------------------------------------------------------------------ per-clip cross-attention


def test_cross_attention_once_per_clip_equals_once_per_frame() -> None:
    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=8, out_bias=True)
    attn.set_processor(DecoupledCrossAttnProcessor(hidden_size=16, cross_attention_dim=12))
    clips, frames, tokens = 2, 4, 6
    hidden = torch.randn(clips * frames, tokens, 16)
    text = torch.randn(clips, 7, 12).repeat_interleave(frames, dim=0)
    image = torch.randn(clips, 5, 12).repeat_interleave(frames, dim=0)
    context = FrameContext(num_frames=frames, pathways=None)
    with torch.no_grad():
        per_frame = attn(hidden, encoder_hidden_states=text, image_prior_tokens=image)
        per_clip = attn(hidden, encoder_hidden_states=text, image_prior_tokens=image, frame_context=context)
        text_only = attn(hidden, encoder_hidden_states=text, frame_context=context)
    assert per_clip.shape == (clips * frames, tokens, 16)
    torch.testing.assert_close(per_clip, per_frame, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        text_only, attn(hidden, encoder_hidden_states=text).detach(), rtol=1e-5, atol=1e-6
    )
