"""Fast solvers vs 200-step DDIM: filter yield per stage and mean VAE-Seq, on the same conditions and seeds.

For each sampler the same banks and clip seeds are sampled, scored (semantic loss with the model's
classifier, VAE latents: `filter.scoring.score_clips`) and filtered (`filter.core.run_filter`, Algorithm 1,
default settings). The table gives the kept fraction of each stage (kept / in), the overall yield, the mean
VAE-Seq of all clips and of the kept ones, and how far each clip's latents land from the DDIM-200 clip of
the same seed (relative L2 of the filter latents).

Default model: the seeded tiny pipeline with a seeded tiny I3D classifier (random weights: the numbers
show the mechanics, not a trained model's quality). `--model DIR` loads a saved model directory with its
`classifier/` (e.g. models/demo). Conditions are synthetic: class k (cycling), a text, a smooth first frame
and a drifting motion field per bank.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_quality.py --out results/quality.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from classify.checkpoint import load_classifier
from classify.preprocess import ClipNormalization, clips_to_tensor
from classify.registry import build_classifier
from filter.core import FilterSettings, run_filter
from filter.scoring import ClassifierInput, checkpoint_classifier_input, score_clips
from generator.conditions import BankConditions
from generator.fast import FastPathSettings, FastSampler
from generator.pipeline import CtrlGenAugPipeline, build_tiny_pipeline
from generator.sampling import SamplerSettings

BASELINE = ("ddim", 200)
SAMPLERS = (
    BASELINE,
    ("ddim", 100),
    ("dpmsolver++", 25),
    ("dpmsolver++", 20),
    ("unipc", 20),
    ("dpmsolver++", 10),
    ("unipc", 10),
)
QUICK_SAMPLERS = (BASELINE, ("dpmsolver++", 20), ("unipc", 10))
STAGES = ("semantic", "inner_sequence", "inter_sequence")


def load_model(
    model_dir: Path | None, device: str
) -> tuple[CtrlGenAugPipeline, nn.Module, ClassifierInput, str]:
    if model_dir is None:
        pipeline = build_tiny_pipeline(num_classes=3, seed=0).to(device)
        torch.manual_seed(0)
        classifier = build_classifier("i3d", num_classes=3, tiny=True).eval().to(device)
        return (
            pipeline,
            classifier,
            partial(clips_to_tensor, normalization=ClipNormalization()),
            "tiny (random)",
        )
    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir, device=device)
    classifier, meta = load_classifier(model_dir / "classifier", device=device)
    return pipeline, classifier, checkpoint_classifier_input(meta), str(model_dir)


def synthetic_banks(pipeline: CtrlGenAugPipeline, count: int, seed: int) -> list[BankConditions]:
    info = pipeline.info
    rng = np.random.default_rng(seed)
    banks = []
    for index in range(count):
        image = gaussian_filter(rng.uniform(0, 255, (info.height, info.width)), sigma=info.height / 16)
        image = (255 * (image - image.min()) / max(np.ptp(image), 1e-6)).astype(np.uint8)
        drift = rng.uniform(-2, 2, size=2).astype(np.float32)[None, :, None, None]
        field = np.broadcast_to(drift, (info.num_frames, 2, info.height, info.width)).copy()
        field[0] = 0
        given = set(info.conditions)
        banks.append(
            BankConditions(
                class_index=index % info.num_classes if "class_label" in given else None,
                text=f"synthetic bank {index}" if "text" in given else None,
                image_prior=image if "image_prior" in given else None,
                motion_field=field if "motion_field" in given else None,
            )
        )
    return banks


def evaluate(
    pipeline: CtrlGenAugPipeline,
    classifier: nn.Module,
    classifier_input: ClassifierInput,
    banks: list[BankConditions],
    clips_per_bank: int,
    sampler: SamplerSettings,
) -> dict[str, Any]:
    clip_banks = [bank for bank in banks for _ in range(clips_per_bank)]
    seeds = list(range(len(clip_banks)))
    group = np.repeat(np.arange(len(banks)), clips_per_bank)
    labels = np.array([bank.class_index or 0 for bank in clip_banks])
    start = time.perf_counter()
    clips = FastSampler(pipeline, FastPathSettings(max_clips_per_batch=len(seeds))).sample(
        clip_banks, seeds, sampler
    )
    seconds = time.perf_counter() - start
    loss, latents = score_clips(clips, labels, classifier, classifier_input, pipeline.encode_latents)
    result = run_filter(group, loss, latents, FilterSettings())
    counts = result.stage_counts()
    kept = result.kept
    return {
        "sampler": sampler.name,
        "steps": sampler.steps,
        "seconds_per_clip": seconds / len(seeds),
        "kept_fraction": {stage: counts[stage]["kept"] / max(counts[stage]["in"], 1) for stage in STAGES},
        "stage_counts": counts,
        "yield": float(kept.mean()),
        "mean_vae_seq": float(result.vae_seq.mean()),
        "mean_vae_seq_kept": float(result.vae_seq[kept].mean()) if kept.any() else None,
        "band": list(result.band),
        "latents": latents,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| sampler | steps | s/clip | semantic kept | inner kept | inter kept | yield | mean VAE-Seq | "
        "Δ VAE-Seq vs DDIM-200 | mean VAE-Seq kept | latent distance to DDIM-200 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = rows[0]["mean_vae_seq"]
    for r in rows:
        kept = r["kept_fraction"]
        kept_seq = "—" if r["mean_vae_seq_kept"] is None else f"{r['mean_vae_seq_kept']:.4f}"
        lines.append(
            f"| {r['sampler']} | {r['steps']} | {r['seconds_per_clip']:.3f} | {kept['semantic']:.2f} | "
            f"{kept['inner_sequence']:.2f} | {kept['inter_sequence']:.2f} | {r['yield']:.2f} | "
            f"{r['mean_vae_seq']:.4f} | {r['mean_vae_seq'] - base:+.4f} | {kept_seq} | "
            f"{r['latent_distance']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="saved model directory with classifier/ (default: tiny)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--banks", type=int, default=4)
    parser.add_argument("--clips-per-bank", type=int, default=6)
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--quick", action="store_true", help="2 banks x 4 clips, three samplers")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    pipeline, classifier, classifier_input, model_name = load_model(args.model, args.device)
    banks_count, per_bank = (2, 4) if args.quick else (args.banks, args.clips_per_bank)
    banks = synthetic_banks(pipeline, banks_count, seed=0)
    rows = []
    for name, steps in QUICK_SAMPLERS if args.quick else SAMPLERS:
        sampler = SamplerSettings(name=name, steps=steps, guidance_scale=args.guidance_scale)
        rows.append(evaluate(pipeline, classifier, classifier_input, banks, per_bank, sampler))
        print(f"[bench_quality] {name} {steps}: yield {rows[-1]['yield']:.2f}", flush=True)
    baseline = rows[0]["latents"]
    for r in rows:
        latents = r.pop("latents")
        distance = np.linalg.norm((latents - baseline).reshape(len(latents), -1), axis=1)
        r["latent_distance"] = float(
            (distance / np.linalg.norm(baseline.reshape(len(baseline), -1), axis=1)).mean()
        )

    print(
        f"\nmodel {model_name}, {banks_count} banks x {per_bank} clips, device {args.device}, "
        f"{platform.processor() or platform.machine()}, {datetime.now(UTC).date()}\n"
    )
    print(markdown(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        results = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": model_name,
            "device": args.device,
            "banks": banks_count,
            "clips_per_bank": per_bank,
            "filter_settings": FilterSettings().model_dump(mode="json"),
            "rows": rows,
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
