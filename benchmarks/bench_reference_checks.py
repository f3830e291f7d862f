"""Time of the filter's reference checks (memorised, off_manifold) per 1,000 clips against a real data build.

Clips are planted from the build (no model is sampled): a quarter noisy copies of training clips, a quarter
held-out test clips with light noise, a quarter uniform noise, a quarter Gaussian noise, each labelled with
its source's class (noise: cycling classes). Timed: preparing the reference (`ReferenceIndex`, once per job),
scoring the clips 32 at a time (the worker's chunk) and `run_filter` with both checks vs Algorithm 1 alone;
with `--model`, the filter's own scoring (classifier loss + VAE latents, filter.scoring) of the first
`--model-clips` clips, for the checks' share of the filter's time.

    OMP_NUM_THREADS=1 nice -n 19 .venv/bin/python benchmarks/bench_reference_checks.py --data /tmp/demo-data \
        [--model models/demo --model-clips 96]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from filter.core import FilterSettings, ReferenceSettings, run_filter
from filter.neighbours import cross_patient_threshold
from filter.reference import RealReference, ReferenceIndex, ReferenceScores
from quality.sources import DataBuild, load_data_build

CHUNK = 32


def planted(build: DataBuild, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    quarter = n // 4
    train = rng.integers(0, len(build.train.clips), quarter)
    test = rng.integers(0, len(build.test.clips), quarter)
    shape = (n - 3 * quarter, *build.train.clips.shape[1:])

    def jitter(clips: np.ndarray) -> np.ndarray:
        return np.clip(clips + rng.normal(0, 3, clips.shape), 0, 255).astype(np.uint8)

    clips = np.concatenate(
        [
            jitter(build.train.clips[train]),
            jitter(build.test.clips[test]),
            rng.integers(0, 256, (quarter, *shape[1:]), dtype=np.uint8),
            np.clip(rng.normal(100, 40, shape), 0, 255).astype(np.uint8),
        ]
    )
    noise_labels = np.arange(n - 2 * quarter) % len(build.class_names)
    labels = np.concatenate([build.train.labels[train], build.test.labels[test], noise_labels])
    return clips, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a data build (ctrlgenaug data demo)")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument(
        "--model", type=Path, help="a generator folder with its classifier/ (e.g. models/demo)"
    )
    parser.add_argument("--model-clips", type=int, default=96)
    args = parser.parse_args()
    names = sorted(
        {line.split('"class_name":"')[1].split('"')[0] for line in (args.data / "manifest.jsonl").open()}
    )
    build = load_data_build(args.data, names, args.frames, args.size, args.size)
    threshold = cross_patient_threshold(
        np.concatenate([build.train.clips, build.test.clips]), build.train.patients + build.test.patients, 0.0
    )
    checks = ReferenceSettings(memorised=True, memorised_threshold=threshold, off_manifold=True)
    clips, labels = planted(build, args.clips, seed=0)

    started = time.perf_counter()
    reference = RealReference([r.clip_id for r in build.train.records], build.train.labels, build.train.clips)
    index = ReferenceIndex(reference, checks)
    prepared = time.perf_counter()
    scores = ReferenceScores.concatenate(
        [index.score(clips[i : i + CHUNK], labels[i : i + CHUNK]) for i in range(0, len(clips), CHUNK)]
    )
    scored = time.perf_counter()

    n = len(clips)
    group = np.arange(n) // 8
    loss = np.zeros(n)
    latents = clips.reshape(n, args.frames, -1)[:, :, :1024].astype(np.float32) / 255.0
    t0 = time.perf_counter()
    plain = run_filter(group, loss, latents, FilterSettings())
    t1 = time.perf_counter()
    checked = run_filter(group, loss, latents, FilterSettings(), checks, scores)
    t2 = time.perf_counter()

    print(
        f"machine: {platform.processor() or platform.machine()}, {n} clips of "
        f"{args.frames}x{args.size}x{args.size}"
    )
    print(f"real training clips: {len(build.train.clips)}; memorised threshold {threshold:.4f}")
    print(f"prepare reference: {prepared - started:.2f} s; score {n} clips: {scored - prepared:.2f} s")
    print(f"run_filter Algorithm 1: {t1 - t0:.2f} s; with both checks: {t2 - t1:.2f} s")
    for stage, counts in checked.stage_counts().items():
        print(
            f"{stage}: {counts['in']} in, {counts['dropped']} dropped "
            f"({counts['dropped'] / max(counts['in'], 1):.0%})"
        )
    print(f"kept: Algorithm 1 alone {int(plain.kept.sum())}, with checks {int(checked.kept.sum())}")
    if args.model is not None:
        count = min(args.model_clips, n)
        seconds = filter_scoring_seconds(args.model, clips[:count], labels[:count])
        checks_per_clip = (scored - prepared) / n
        print(
            f"filter scoring (classifier + VAE) of {count} clips: {seconds:.2f} s "
            f"({seconds / count * 1000:.1f} s per 1,000); the checks add "
            f"{checks_per_clip / (seconds / count):.1%} per clip"
        )


def filter_scoring_seconds(model_dir: Path, clips: np.ndarray, labels: np.ndarray) -> float:
    """Seconds `filter.scoring.score_clips` takes on `clips`, `CHUNK` at a time, with the model's VAE and
    classifier (loading excluded)."""
    from classify.checkpoint import load_classifier
    from filter.scoring import checkpoint_classifier_input, score_clips
    from generator.pipeline import CtrlGenAugPipeline

    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir)
    classifier, meta = load_classifier(model_dir / "classifier")
    started = time.perf_counter()
    for i in range(0, len(clips), CHUNK):
        chunk = slice(i, i + CHUNK)
        score_clips(
            clips[chunk],
            labels[chunk],
            classifier,
            checkpoint_classifier_input(meta),
            pipeline.encode_latents,
        )
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
