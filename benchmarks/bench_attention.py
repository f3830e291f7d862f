"""Which attention kernel is fastest at the sequence UNet's full-resolution shapes.

The 2026-11-26 H200 profile's largest kernel was SDPA at head dim 40 (benchmarks/RESULTS.md).

Shapes of the SD-shaped default (320 channels = 8 heads x 40, a 32x32 latent of 256x256 clips, 8 frames),
for `--clips` clips under guidance (conditional + unconditional rows, 2 x clips):
- SA: sequential attention, one 8-frame sequence per latent position, no mask;
- MFA: motion-field attention, one 8-slot sequence per pathway (pathways of a drifting, noisy motion field for
  the conditional rows, straight ones for the unconditional rows, padded to one count), with its key mask;
- KA: key-frame attention, 1,024 queries per frame over 2,048 keys (frame 1 || frame l-1);
- text: cross-attention of a clip's 8,192 queries over its 77 text tokens.
Each runs through `F.scaled_dot_product_attention` with its default dispatch and with each backend
forced; SA and MFA (short sequences) also through plain matmul + softmax and packed: 8 or 16 sequences end
to end in one sequence with a block-diagonal mask. Reports ms per call and the relative L2 error
against fp32 math attention on the first rows. A backend that refuses the inputs is reported, not fatal.

    .venv/bin/python benchmarks/bench_attention.py --device cuda --clips 16
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_attention.py --device cpu   # small shapes, ratios
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from bench_sampler import drifting_motion_field
from torch.nn.attention import SDPBackend, sdpa_kernel

from generator.pathways import PathwayIndex, sample_pathways, straight_pathways

HEADS, HEAD_DIM, FRAMES, TEXT_TOKENS = 8, 40, 8, 77
BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,
}
REFERENCE_ROWS = 64  # batch rows of each shape compared against fp32 math attention
PACKED_GROUPS = (8, 16)  # short sequences per packed sequence: 64 or 128 tokens, one attention tile


@dataclass(frozen=True)
class Shape:
    name: str
    query: torch.Tensor  # (batch, heads, tokens, dim)
    key: torch.Tensor
    value: torch.Tensor
    mask: torch.Tensor | None  # boolean, broadcast over heads and queries

    @property
    def short(self) -> bool:
        return self.key.shape[2] <= 64


def mfa_key_mask(clips: int, latent: int, seed: int) -> torch.Tensor:
    """The MFA key mask of a guided batch: pathways of `drifting_motion_field` for the conditional rows,
    straight pathways for the unconditional rows (padded with empty ones to the batch's count)."""
    rng = np.random.default_rng(seed)
    moving = [
        sample_pathways(drifting_motion_field(FRAMES, latent * 8, rng), m=8, seed=int(rng.integers(1 << 31)))
        for _ in range(clips)
    ]
    still = [straight_pathways(FRAMES, latent, latent)] * clips
    return PathwayIndex.build(moving + still, FRAMES, latent, latent, torch.device("cpu")).key_mask


def shapes(clips: int, latent: int, device: torch.device, dtype: torch.dtype, seed: int) -> list[Shape]:
    generator = torch.Generator().manual_seed(seed)
    rows, tokens = 2 * clips, latent * latent

    def tensor(batch: int, length: int) -> torch.Tensor:
        x = torch.randn(batch, length, HEADS, HEAD_DIM, generator=generator)
        return x.to(device, dtype).transpose(1, 2)  # the processors' (batch, heads, tokens, dim) view

    mask = mfa_key_mask(clips, latent, seed).to(device)
    pathways = mask.shape[0]
    return [
        Shape(
            "SA",
            tensor(rows * tokens, FRAMES),
            tensor(rows * tokens, FRAMES),
            tensor(rows * tokens, FRAMES),
            None,
        ),
        Shape("MFA", tensor(pathways, FRAMES), tensor(pathways, FRAMES), tensor(pathways, FRAMES), mask),
        Shape(
            "KA",
            tensor(rows * FRAMES, tokens),
            tensor(rows * FRAMES, 2 * tokens),
            tensor(rows * FRAMES, 2 * tokens),
            None,
        ),
        Shape(
            "text", tensor(rows, FRAMES * tokens), tensor(rows, TEXT_TOKENS), tensor(rows, TEXT_TOKENS), None
        ),
    ]


def matmul_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """Attention written out: the scores of an 8-token sequence are 64 numbers, no tiling needed."""
    scores = (query @ key.transpose(-1, -2)).float() * query.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1).to(value.dtype) @ value


def kernels(shape: Shape) -> dict[str, Callable[[], torch.Tensor]]:
    def sdpa(backend: SDPBackend | None) -> Callable[[], torch.Tensor]:
        def call() -> torch.Tensor:
            args = (shape.query, shape.key, shape.value)
            if backend is None:
                return F.scaled_dot_product_attention(*args, attn_mask=shape.mask)
            with sdpa_kernel(backend):
                return F.scaled_dot_product_attention(*args, attn_mask=shape.mask)

        return call

    chosen = {"sdpa default": sdpa(None)} | {f"sdpa {name}": sdpa(b) for name, b in BACKENDS.items()}
    if not shape.short:
        del chosen["sdpa math"]  # the full score matrix of a long sequence: slow and many GB
        return chosen
    chosen["matmul + softmax"] = lambda: matmul_attention(shape.query, shape.key, shape.value, shape.mask)
    for group in PACKED_GROUPS:
        for name, backend in (("default", None), ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
            chosen[f"packed x{group}, sdpa {name}"] = packed_call(shape, group, backend)
    return chosen


def packed_call(shape: Shape, group: int, backend: SDPBackend | None) -> Callable[[], torch.Tensor]:
    """`group` short sequences end to end in one sequence, kept apart by a block-diagonal mask: one
    attention tile then serves `group` sequences instead of one padded sequence. In the token layout the
    packing is a view (a processor would pad the pathway count to a multiple of `group` when it builds the
    index), so it is prepared here, outside the timed call."""
    batch, heads, length, dim = shape.query.shape
    pad = -batch % group

    def pack(x: torch.Tensor) -> torch.Tensor:
        tokens = F.pad(x.transpose(1, 2), (0, 0, 0, 0, 0, 0, 0, pad))  # (batch + pad, length, heads, dim)
        return tokens.reshape(-1, group * length, heads, dim).transpose(1, 2)

    query, key, value = pack(shape.query), pack(shape.key), pack(shape.value)
    slot = torch.arange(group * length, device=query.device) // length
    mask = (slot[:, None] == slot[None, :])[None, None]
    if shape.mask is not None:
        keys = F.pad(shape.mask.reshape(batch, length), (0, 0, 0, pad), value=True)
        mask = mask & keys.reshape(-1, 1, 1, group * length)

    def call() -> torch.Tensor:
        with sdpa_kernel(backend) if backend else nullcontext():
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return out.transpose(1, 2).reshape(batch + pad, length, heads, dim)[:batch].transpose(1, 2)

    return call


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def milliseconds(call: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    """Median wall milliseconds of `repeats` calls after two warm-up calls."""
    for _ in range(2):
        call()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def reference(shape: Shape) -> torch.Tensor:
    """fp32 math attention of the first `REFERENCE_ROWS` batch rows."""
    rows = slice(0, REFERENCE_ROWS)
    q, k, v = (x[rows].float() for x in (shape.query, shape.key, shape.value))
    mask = None if shape.mask is None else shape.mask[rows]
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def run(
    clips: int, latent: int, device: torch.device, dtype: torch.dtype, repeats: int
) -> list[dict[str, Any]]:
    results = []
    for shape in shapes(clips, latent, device, dtype, seed=0):
        expected = reference(shape)
        for name, call in kernels(shape).items():
            entry: dict[str, Any] = {
                "shape": shape.name,
                "kernel": name,
                "batch": shape.query.shape[0],
                "queries": shape.query.shape[2],
                "keys": shape.key.shape[2],
                "masked": shape.mask is not None,
            }
            try:
                got = call()[:REFERENCE_ROWS].float()
                entry["ms"] = milliseconds(call, device, repeats)
                entry["relative_l2"] = float((got - expected).norm() / expected.norm())
            except RuntimeError as error:  # no kernel for these inputs on this device
                entry["error"] = str(error).splitlines()[0]
            results.append(entry)
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| shape | batch x queries x keys | kernel | ms per call | vs sdpa default | rel. L2 vs fp32 math |",
        "|---|---|---|---:|---:|---:|",
    ]
    default = {r["shape"]: r.get("ms") for r in results if r["kernel"] == "sdpa default"}
    for r in results:
        size = f"{r['batch']:,} x {r['queries']:,} x {r['keys']:,}" + (" (mask)" if r["masked"] else "")
        if "error" in r:
            lines.append(f"| {r['shape']} | {size} | {r['kernel']} | no kernel for these inputs | — | — |")
            continue
        base = default[r["shape"]]
        ratio = f"{base / r['ms']:.2f}x" if base else "—"
        lines.append(
            f"| {r['shape']} | {size} | {r['kernel']} | {r['ms']:.3f} | {ratio} | {r['relative_l2']:.1e} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--clips", type=int, help="clips per batch (default: 16 on cuda, 1 on cpu)")
    parser.add_argument(
        "--latent", type=int, help="latent side (default: 32 = 256x256 clips on cuda, 8 on cpu)"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    clips = args.clips or (16 if gpu else 1)
    latent = args.latent or (32 if gpu else 8)
    dtype = torch.bfloat16 if gpu else torch.float32
    results = run(clips, latent, device, dtype, args.repeats)
    machine = torch.cuda.get_device_name(device) if gpu else "cpu"
    print(f"{machine}, torch {torch.__version__}, {dtype}, {clips} clips (x2 rows, guided), latent {latent}²")
    print(markdown(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": machine, "torch": torch.__version__, "dtype": str(dtype), "clips": clips}
        args.out.write_text(json.dumps(payload | {"latent": latent, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
