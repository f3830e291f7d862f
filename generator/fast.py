"""The fast sampling path: mixed precision, clips batched by free GPU memory, optional `torch.compile`.

`FastSampler` runs a job's clips through the pipeline in batches, preparing the next batch on a helper
thread while the current one denoises. On a GPU the batch size
comes from the free memory and a per-clip memory estimate measured once (one guided step plus the VAE
decode, at 1 and at 2 clips); elsewhere it is `max_clips_per_batch`. A clip's output does not depend on
the batch it lands in: its noise comes from its own CPU generator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, get_args

import diffusers
import numpy as np
import torch

from generator.conditions import BankConditions
from generator.pipeline import CtrlGenAugPipeline, PreparedBatch
from generator.sampling import SamplerSettings

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
COMPILE_MODES: tuple[str, ...] = get_args(CompileMode)


@dataclass(frozen=True)
class FastPathSettings:
    """How the fast path runs the pipeline.

    `precision`: `auto` (bf16 autocast on a GPU that has it, else fp16 on a GPU, fp32 on the CPU), or
    `fp32` / `bf16` / `fp16`. `max_clips_per_batch` caps the batch (and is the batch off the GPU);
    `memory_fraction` is the share of the free GPU memory a batch may fill. `compile_unet` compiles the
    UNet with `torch.compile(mode=compile_mode)` (worth it when many batches share one shape).
    `channels_last` stores the UNet's convolution weights channels-last, so cuDNN convolutions (and the
    activations they produce) run in NHWC without a transpose around every convolution. `cast_unet` runs
    the UNet itself in the bf16/fp16 of `precision` (weights cast once, no autocast in the denoising loop:
    norms and softmax run in that dtype with their kernels' fp32 accumulation instead of fp32 round trips),
    as diffusers pipelines loaded with `torch_dtype` do; the VAE decode keeps autocast. No effect in fp32.
    """

    precision: str = "auto"
    max_clips_per_batch: int = 32
    memory_fraction: float = 0.9
    compile_unet: bool = False
    compile_mode: CompileMode = "default"
    channels_last: bool = False
    cast_unet: bool = False

    def __post_init__(self) -> None:
        if self.precision != "auto" and self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be 'auto' or one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        if isinstance(self.max_clips_per_batch, bool) or self.max_clips_per_batch < 1:
            raise ValueError(f"max_clips_per_batch must be >= 1, got {self.max_clips_per_batch!r}")
        if not 0.0 < self.memory_fraction <= 1.0:
            raise ValueError(f"memory_fraction must be in (0, 1], got {self.memory_fraction!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}")

    def autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        """The autocast dtype on `device`; None runs in the model's own dtype."""
        if self.precision != "auto":
            return PRECISIONS[self.precision]
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass(frozen=True)
class ClipMemory:
    """Peak device memory of sampling n clips, modelled as `fixed_bytes + n * per_clip_bytes`."""

    fixed_bytes: int
    per_clip_bytes: int

    def __post_init__(self) -> None:
        if self.fixed_bytes < 0 or self.per_clip_bytes < 1:
            raise ValueError(
                f"need fixed_bytes >= 0 and per_clip_bytes >= 1, "
                f"got {self.fixed_bytes} and {self.per_clip_bytes}"
            )

    @classmethod
    def from_peaks(cls, one_clip: int, two_clips: int) -> ClipMemory:
        """From the measured peaks at 1 and 2 clips (a second clip never costs less than 1 byte)."""
        per_clip = max(two_clips - one_clip, 1)
        return cls(fixed_bytes=max(one_clip - per_clip, 0), per_clip_bytes=per_clip)


def clips_per_batch(memory: ClipMemory, available_bytes: int, memory_fraction: float, max_clips: int) -> int:
    """The most clips whose estimated peak fits in `memory_fraction` of `available_bytes`, within
    [1, max_clips]."""
    budget = available_bytes * memory_fraction - memory.fixed_bytes
    return max(1, min(max_clips, int(budget // memory.per_clip_bytes)))


def even_batches(count: int, largest: int) -> list[range]:
    """Split `count` items into the fewest batches of at most `largest`, sizes differing by at most one
    (so a compiled UNet sees at most two batch shapes)."""
    if count < 1 or largest < 1:
        raise ValueError(f"count and largest must be >= 1, got {count} and {largest}")
    batches = math.ceil(count / largest)
    bounds = [round(i * count / batches) for i in range(batches + 1)]
    return [range(start, stop) for start, stop in zip(bounds, bounds[1:], strict=False)]


def available_cuda_bytes(device: torch.device) -> int:
    """Free device memory plus what PyTorch's caching allocator holds unused."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def measure_clip_memory(
    pipeline: CtrlGenAugPipeline,
    bank: BankConditions,
    sampler: SamplerSettings,
    unet_autocast: torch.dtype | None,
    decode_autocast: torch.dtype | None,
) -> ClipMemory:
    """Peak CUDA memory above the resting allocation of one denoising step (UNet under `unet_autocast`) and
    the decode (under `decode_autocast`), at 1 and 2 clips.

    The decode runs `decode_chunk_frames` frames at a time, so its share stops growing with the batch:
    the linear model over-estimates large batches, which errs on the safe side.
    """
    device = pipeline.device
    if device.type != "cuda":
        raise ValueError(f"measuring clip memory needs a CUDA pipeline, got device {device}")
    one_step = sampler.model_copy(update={"steps": 1})
    peaks = []
    for clips in (1, 2):
        torch.cuda.synchronize(device)
        resting = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        latents = pipeline.sample_latents(
            [bank] * clips, list(range(clips)), one_step, autocast=unet_autocast
        )
        pipeline.decode(latents, decode_autocast)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - resting)
    return ClipMemory.from_peaks(peaks[0], peaks[1])


def use_channels_last(pipeline: CtrlGenAugPipeline) -> None:
    """Store the sequence UNet's 4D parameters channels-last, in place (values and names unchanged)."""
    torch.nn.Module.to(pipeline.unet, memory_format=torch.channels_last)


def cast_unet(pipeline: CtrlGenAugPipeline, dtype: torch.dtype) -> None:
    """The sequence UNet's parameters and buffers in `dtype`, in place. Through `nn.Module.to`: diffusers'
    override warns about modules kept in float32 on every cast, even when there are none (as here)."""
    torch.nn.Module.to(pipeline.unet, dtype=dtype)


def compile_unet(pipeline: CtrlGenAugPipeline, mode: CompileMode = "default") -> None:
    """Compile the sequence UNet's 2D backbone in place (`nn.Module.compile`: parameter names unchanged)."""
    pipeline.unet.unet.compile(mode=mode)


class FastSampler:
    """Samples any number of clips through `pipeline.sample`, in memory-sized batches, in mixed precision."""

    def __init__(self, pipeline: CtrlGenAugPipeline, settings: FastPathSettings | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings or FastPathSettings()
        self._memory: dict[bool, ClipMemory] = {}
        self.autocast = self.settings.autocast_dtype(pipeline.device)
        self.unet_autocast = self.autocast
        if self.settings.cast_unet and self.autocast is not None:
            cast_unet(pipeline, self.autocast)
            self.unet_autocast = None
        if self.settings.channels_last:
            use_channels_last(pipeline)
        if self.settings.compile_unet:
            compile_unet(pipeline, self.settings.compile_mode)
        self.execution = self._execution()

    def _execution(self) -> dict[str, Any]:
        """How this sampler computes, for each clip's provenance: model, conditions, seed and sampler give the
        same bytes again only under the same execution (precision and kernels change the rounding)."""
        device = self.pipeline.device
        precision = {dtype: name for name, dtype in PRECISIONS.items()}[self.autocast]
        return {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
            "precision": precision,
            "cast_unet": self.unet_autocast is None and self.autocast is not None,
            "channels_last": self.settings.channels_last,
            "compile_mode": self.settings.compile_mode if self.settings.compile_unet else None,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
        }

    def clip_memory(self, bank: BankConditions, sampler: SamplerSettings) -> ClipMemory:
        """Measured on first use; guided sampling (twice the UNet batch) is measured separately."""
        guided = sampler.guidance_scale != 1.0
        if guided not in self._memory:
            self._memory[guided] = measure_clip_memory(
                self.pipeline, bank, sampler, self.unet_autocast, self.autocast
            )
        return self._memory[guided]

    def batch_size(self, bank: BankConditions, sampler: SamplerSettings) -> int:
        limit = self.settings.max_clips_per_batch
        device = self.pipeline.device
        if device.type != "cuda":
            return limit
        memory = self.clip_memory(bank, sampler)
        return clips_per_batch(memory, available_cuda_bytes(device), self.settings.memory_fraction, limit)

    def plan(
        self, banks: Sequence[BankConditions], seeds: Sequence[int], sampler: SamplerSettings
    ) -> list[range]:
        """Positions of each batch: as few batches as the memory-sized batch allows, evenly filled."""
        if len(banks) != len(seeds):
            raise ValueError(f"banks and seeds must have the same length, got {len(banks)} and {len(seeds)}")
        if not seeds:
            raise ValueError("seeds must not be empty")
        return even_batches(len(seeds), self.batch_size(banks[0], sampler))

    def batches(
        self,
        banks: Sequence[BankConditions],
        seeds: Sequence[int],
        sampler: SamplerSettings,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
        plan: list[range] | None = None,
    ) -> Iterator[tuple[range, np.ndarray]]:
        """Yield `(positions, uint8 clips)` batch by batch (`plan`, default `self.plan(...)`); clip j of a
        batch is clip `positions[j]` of the input.

        While one batch denoises, a helper thread prepares the next (conditions, noise, copies to the
        device), so the device does not wait on host work between batches. `progress(step, steps)` counts
        the denoising steps of the current batch.
        """
        plan = plan or self.plan(banks, seeds, sampler)

        def prepare(positions: range) -> PreparedBatch:
            chosen = [banks[i] for i in positions]
            return self.pipeline.prepare(chosen, [seeds[i] for i in positions], sampler)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prepare-batch") as helper:
            upcoming = helper.submit(prepare, plan[0])
            for number, positions in enumerate(plan):
                prepared = upcoming.result()
                if number + 1 < len(plan):
                    upcoming = helper.submit(prepare, plan[number + 1])
                latents = self.pipeline.denoise_prepared(
                    prepared, sampler, progress, should_cancel, self.unet_autocast
                )
                yield positions, self.pipeline.decode(latents, self.autocast)

    def sample(
        self,
        banks: Sequence[BankConditions],
        seeds: Sequence[int],
        sampler: SamplerSettings,
        progress: Callable[[int, int], None] | None = None,
        should_cancel: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """uint8 clips `(len(seeds), F, H, W)`, as `pipeline.sample` gives them; `progress(done, total)`
        counts denoising steps over all batches."""
        plan = self.plan(banks, seeds, sampler)
        finished = 0

        def across_batches(step: int, steps: int) -> None:
            assert progress is not None
            progress(finished * steps + step, len(plan) * steps)

        clips = []
        for _, batch in self.batches(
            banks, seeds, sampler, across_batches if progress else None, should_cancel, plan
        ):
            clips.append(batch)
            finished += 1
        return np.concatenate(clips)
