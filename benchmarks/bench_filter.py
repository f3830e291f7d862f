"""Throughput of the filter core (`filter.core.run_filter`, Algorithm 1) on precomputed scores.

Synthetic jobs: groups of `--group-size` clips, random losses, latents whose frames drift from a per-clip
base by a random amount (so VAE-Seq spreads over the K-means band) and ~5% exact in-group copies.
Prints one markdown table row per job size: clips per second of `run_filter` alone.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_filter.py
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from filter.core import FilterSettings, run_filter


@dataclass(frozen=True)
class Case:
    clips: int
    latent_shape: tuple[int, ...]
    dtype: str


# 50k clips of 8 x 4x32x32 float32 would be 6.5 GB: the 50k case uses 4x16x16 float16 latents (0.8 GB)
CASES = (
    Case(1_000, (8, 4, 32, 32), "float32"),
    Case(10_000, (8, 4, 32, 32), "float32"),
    Case(50_000, (8, 4, 16, 16), "float16"),
)


def synthetic_job(case: Case, group_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frames, dim = case.latent_shape[0], int(np.prod(case.latent_shape[1:]))
    latents = np.empty((case.clips, frames, dim), dtype=case.dtype)
    for start in range(0, case.clips, 1000):
        count = min(1000, case.clips - start)
        base = rng.standard_normal((count, 1, dim), dtype=np.float32)
        drift = rng.uniform(0.2, 2.0, size=(count, 1, 1)).astype(np.float32)
        noise = rng.standard_normal((count, frames, dim), dtype=np.float32)
        latents[start : start + count] = base + drift * noise
    group = np.arange(case.clips) // group_size
    copies = np.flatnonzero((rng.random(case.clips) < 0.05) & (np.arange(case.clips) % group_size > 0))
    latents[copies] = latents[copies - 1]
    loss = rng.gamma(2.0, 0.5, size=case.clips)
    return group, loss, latents.reshape(case.clips, *case.latent_shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", help="only these job sizes (1000, 10000, 50000)")
    parser.add_argument("--group-size", type=int, default=30)
    parser.add_argument("--scope", choices=["group", "job"], default="group")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = FilterSettings(scope=args.scope)
    # one small run first, so one-time costs (lazy imports, thread pools) are not timed
    run_filter(*synthetic_job(Case(100, (8, 4, 8, 8), "float32"), args.group_size, args.seed), settings)
    print(f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print("| clips | latents per clip | dtype | group size | scope | seconds | clips/s | kept |")
    print("|---:|---|---|---:|---|---:|---:|---:|")
    for case in CASES:
        if args.sizes and case.clips not in args.sizes:
            continue
        group, loss, latents = synthetic_job(case, args.group_size, args.seed)
        start = time.perf_counter()
        result = run_filter(group, loss, latents, settings)
        seconds = time.perf_counter() - start
        shape = "x".join(map(str, case.latent_shape))
        print(
            f"| {case.clips} | {shape} | {case.dtype} | {args.group_size} | {args.scope} | {seconds:.2f} "
            f"| {case.clips / seconds:,.0f} | {int(result.kept.sum())} |",
            flush=True,
        )
        del latents


if __name__ == "__main__":
    main()
