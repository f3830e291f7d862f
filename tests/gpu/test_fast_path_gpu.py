"""The fast sampling path on a CUDA device: bf16 vs fp32 on the SD-shaped sequence UNet, batched vs single
clips (eager and compiled), the memory-sized batch, and no host<->device copies inside the loop."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from generator.conditions import BankConditions, ConditionInputs
from generator.config import ImageUNetConfig, SequenceUNetConfig
from generator.fast import FastPathSettings, FastSampler, available_cuda_bytes, compile_unet
from generator.image_unet import ImageUNet
from generator.pathways import sample_pathways, straight_pathways
from generator.pipeline import CtrlGenAugPipeline, build_tiny_pipeline
from generator.sampling import (
    SamplerSettings,
    build_scheduler,
    clip_generators,
    clip_noise,
    denoise,
    unet_denoiser,
)
from generator.sequence_unet import SequenceUNet

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda")
FEW_STEPS = SamplerSettings(steps=4)
# bf16 keeps 8 mantissa bits: through the SD-shaped UNet and 4 DDIM steps the latents stay within 5 %
# (relative L2) of fp32, and point the same way (cosine >= 0.998).
BF16_RELATIVE_L2 = 0.05
BF16_COSINE = 0.998


def _bank(seed: int, size: int, frames: int) -> BankConditions:
    rng = np.random.default_rng(seed)
    field = (
        np.array([1.5, -1.0])[None, :, None, None] + rng.standard_normal((frames, 2, size, size))
    ).astype(np.float32)
    field[0] = 0
    return BankConditions(
        class_index=1,
        text="hypoechoic nodule",
        image_prior=rng.integers(0, 256, size=(size, size), dtype=np.uint8),
        motion_field=field,
    )


def _relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0))


@pytest.fixture(scope="module")
def sd_unet() -> SequenceUNet:
    torch.manual_seed(0)
    unet = SequenceUNet.from_image_unet(ImageUNet.build(ImageUNetConfig()), SequenceUNetConfig())
    return unet.to(CUDA).eval()


@pytest.fixture(scope="module")
def tiny() -> CtrlGenAugPipeline:
    return build_tiny_pipeline(seed=0).to(CUDA)


@pytest.fixture
def exact_fp32() -> Iterator[None]:
    """TF32 off: batched and single clips may pick different conv algorithms, equal only in true fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _sd_conditions(clips: int, frames: int, size: int) -> tuple[ConditionInputs, ConditionInputs]:
    generator = torch.Generator().manual_seed(1)
    fields = [torch.from_numpy(_bank(i, size, frames).motion_field) for i in range(clips)]  # type: ignore[arg-type]
    cond = ConditionInputs(
        class_labels=torch.arange(clips) % 3,
        text_tokens=torch.randn(clips, 77, 768, generator=generator),
        image_prior_tokens=torch.randn(clips, 1024, 768, generator=generator),
        motion_field=torch.stack(fields),
        pathways=tuple(sample_pathways(f, m=8, seed=i) for i, f in enumerate(fields)),
    )
    uncond = ConditionInputs(
        class_labels=torch.full((clips,), 3),
        text_tokens=torch.zeros(clips, 77, 768),
        image_prior_tokens=torch.zeros(clips, 1024, 768),
        motion_field=torch.zeros(clips, frames, 2, size, size),
        pathways=tuple(straight_pathways(frames, size // 8, size // 8) for _ in range(clips)),
    )
    return cond.to(CUDA, torch.float32), uncond.to(CUDA, torch.float32)


@torch.no_grad()
def _sd_latents(unet: SequenceUNet, autocast: torch.dtype | None) -> torch.Tensor:
    clips, frames, size = 2, 8, 256
    cond, uncond = _sd_conditions(clips, frames, size)
    generators = clip_generators([5, 6])
    noise = clip_noise(generators, (4, frames, size // 8, size // 8)).to(CUDA)
    scheduler = build_scheduler(FEW_STEPS)
    return denoise(
        unet_denoiser(unet), scheduler, noise, cond, uncond, FEW_STEPS, generators, autocast=autocast
    )


def test_bf16_autocast_matches_fp32_on_the_sd_shaped_unet(sd_unet) -> None:
    reference = _sd_latents(sd_unet, None)
    mixed = _sd_latents(sd_unet, torch.bfloat16)
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    assert 0 < _relative_l2(mixed, reference) < BF16_RELATIVE_L2
    assert _cosine(mixed, reference) > BF16_COSINE


@pytest.mark.parametrize("autocast", [torch.bfloat16, None], ids=["under-autocast", "no-autocast"])
def test_bf16_weights_match_fp32_on_the_sd_shaped_unet(sd_unet, autocast) -> None:
    """bf16 weights under autocast (norms in fp32), and without it (`cast_unet`: norms in bf16)."""
    reference = _sd_latents(sd_unet, None)
    sd_unet.to(torch.bfloat16)
    try:
        cast = _sd_latents(sd_unet, autocast)
    finally:
        sd_unet.to(torch.float32)
    assert cast.dtype == torch.float32
    assert _relative_l2(cast, reference) < BF16_RELATIVE_L2
    assert _cosine(cast, reference) > BF16_COSINE


def test_channels_last_matches_the_default_layout_on_the_sd_shaped_unet(sd_unet, exact_fp32) -> None:
    """cuDNN's NHWC kernels sum in another order: equal within fp32 rounding, and in bf16 within bf16's."""
    reference = {dtype: _sd_latents(sd_unet, dtype) for dtype in (None, torch.bfloat16)}
    sd_unet.to(memory_format=torch.channels_last)
    try:
        nhwc = {dtype: _sd_latents(sd_unet, dtype) for dtype in (None, torch.bfloat16)}
    finally:
        sd_unet.to(memory_format=torch.contiguous_format)
    assert _relative_l2(nhwc[None], reference[None]) < 1e-4
    assert _relative_l2(nhwc[torch.bfloat16], reference[torch.bfloat16]) < BF16_RELATIVE_L2


def test_batch_of_four_equals_four_single_clips_in_fp32(tiny, exact_fp32) -> None:
    banks = [_bank(i, 32, 8) for i in range(4)]
    seeds = [10, 11, 12, 13]
    singles = torch.cat([tiny.sample_latents([b], [s], FEW_STEPS) for b, s in zip(banks, seeds, strict=True)])
    batched = tiny.sample_latents(banks, seeds, FEW_STEPS)
    torch.testing.assert_close(batched, singles, rtol=1e-4, atol=1e-4)
    expected = tiny.decode(singles).astype(int)
    for cap in (4, 2, 1):  # one batch; two and four, each prepared on the helper thread during the last
        fast = FastSampler(tiny, FastPathSettings(precision="fp32", max_clips_per_batch=cap))
        clips = fast.sample(banks, seeds, FEW_STEPS)
        assert np.abs(clips.astype(int) - expected).max() <= 1, f"max_clips_per_batch {cap}"


def test_bf16_batch_of_four_matches_single_clips(tiny) -> None:
    banks = [_bank(i, 32, 8) for i in range(4)]
    seeds = [20, 21, 22, 23]
    bf16 = torch.bfloat16
    singles = torch.cat(
        [tiny.sample_latents([b], [s], FEW_STEPS, autocast=bf16) for b, s in zip(banks, seeds, strict=True)]
    )
    batched = tiny.sample_latents(banks, seeds, FEW_STEPS, autocast=bf16)
    assert _relative_l2(batched, singles) < 1e-2


def test_compiled_unet_batch_of_four_equals_eager_single_clips(exact_fp32) -> None:
    eager = build_tiny_pipeline(seed=3).to(CUDA)
    compiled = build_tiny_pipeline(seed=3).to(CUDA)
    compile_unet(compiled)
    banks = [_bank(i, 32, 8) for i in range(4)]
    seeds = [30, 31, 32, 33]
    singles = torch.cat(
        [eager.sample_latents([b], [s], FEW_STEPS) for b, s in zip(banks, seeds, strict=True)]
    )
    batched = compiled.sample_latents(banks, seeds, FEW_STEPS)
    torch.testing.assert_close(batched, singles, rtol=1e-3, atol=1e-3)
    assert compiled.unet.unet.state_dict().keys() == eager.unet.unet.state_dict().keys()


def test_memory_chosen_batch_fits_the_measured_peak(tiny) -> None:
    bank = _bank(0, 32, 8)
    fast = FastSampler(tiny, FastPathSettings(max_clips_per_batch=8))
    memory = fast.clip_memory(bank, FEW_STEPS)
    assert memory.per_clip_bytes > 1
    batch = fast.batch_size(bank, FEW_STEPS)
    assert 1 <= batch <= 8
    assert (
        memory.fixed_bytes + batch * memory.per_clip_bytes <= 0.9 * available_cuda_bytes(CUDA) or batch == 1
    )
    torch.cuda.synchronize()
    resting = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fast.sample([bank] * batch, list(range(batch)), FEW_STEPS)
    peak = torch.cuda.max_memory_allocated() - resting
    assert peak <= 1.1 * (memory.fixed_bytes + batch * memory.per_clip_bytes)


def _copies(pipeline: CtrlGenAugPipeline, sampler: SamplerSettings) -> tuple[int, int]:
    """(host-to-device, device-to-host) memcpy kernels of one `sample_latents` call."""
    bank = _bank(1, 32, 8)
    pipeline.sample_latents([bank, bank], [1, 2], sampler)  # warm-up: lazy inits, caches
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profiler:
        pipeline.sample_latents([bank, bank], [1, 2], sampler)
        torch.cuda.synchronize()
    names = [event.name for event in profiler.events()]
    return sum("HtoD" in n for n in names), sum("DtoH" in n for n in names)


@pytest.mark.parametrize("solver", ["ddim", "dpmsolver++"])
def test_denoising_steps_copy_nothing_between_host_and_device(tiny, solver) -> None:
    short_h2d, short_d2h = _copies(tiny, SamplerSettings(name=solver, steps=3))
    long_h2d, long_d2h = _copies(tiny, SamplerSettings(name=solver, steps=8))
    assert short_h2d > 0, "the profiler saw no host-to-device copy at all (noise and conditions go up once)"
    assert long_h2d == short_h2d, f"{long_h2d - short_h2d} host-to-device copies in 5 more steps"
    # conditions are validated once per batch (prepare_conditions), so a step reads nothing back
    assert long_d2h == short_d2h, f"{long_d2h - short_d2h} device-to-host copies in 5 more steps"
