"""Figures and the run summary of a training campaign: loss curves, real-vs-generated grid, Markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from training.checkpoint import FINAL_DIR, METADATA_FILE
from training.trainer import LOSS_LOG

STAGES = ("vae", "vae_continue", "text", "image", "sequence", "vae_decoder", "classifier")
MARK_START = "<!-- demo-run:start -->"
MARK_END = "<!-- demo-run:end -->"


def read_losses(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    entries = [json.loads(line) for line in (run_dir / LOSS_LOG).read_text().splitlines() if line]
    return np.array([e["step"] for e in entries]), np.array([e["loss"] for e in entries])


def plot_loss_curves(runs: dict[str, Path], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 2.8), squeeze=False)
    for axis, (stage, run_dir) in zip(axes[0], runs.items(), strict=True):
        steps, losses = read_losses(run_dir)
        axis.plot(steps, losses, linewidth=0.8)
        axis.set_title(stage)
        axis.set_xlabel("epoch" if stage == "classifier" else "step")
        axis.set_yscale("log")
    axes[0][0].set_ylabel("training loss")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def real_vs_generated(
    model_dir: Path, data_dir: Path, path: Path, clips: int = 3, steps: int = 25, seed: int = 0
) -> Path:
    """Rows: a real training clip, then the clip generated from its condition bank (class, text, first frame,
    motion field), for `clips` clips of different classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from generator.conditions import BankConditions
    from generator.pipeline import CtrlGenAugPipeline
    from generator.sampling import SamplerSettings
    from ingest.manifest import load_clip, load_manifest

    pipeline = CtrlGenAugPipeline.from_pretrained(model_dir)
    records = [r for r in load_manifest(data_dir / "manifest.jsonl") if r.split == "train"]
    chosen: dict[str, Any] = {}
    for record in records:
        chosen.setdefault(record.class_name, record)
    picked = list(chosen.values())[:clips]
    frames = pipeline.info.num_frames
    real = [load_clip(data_dir, record)[:frames] for record in picked]
    banks = []
    for record, clip in zip(picked, real, strict=True):
        with np.load(data_dir / record.motion_path) as motion:
            field = motion["field"][:frames].astype(np.float32)
        banks.append(
            BankConditions(
                class_index=pipeline.info.class_names.index(record.class_name),
                text=record.text,
                image_prior=clip[0],
                motion_field=field,
            )
        )
    generated = pipeline.sample(
        banks,
        seeds=[seed + i for i in range(len(banks))],
        sampler=SamplerSettings(name="dpmsolver++", steps=steps),
    )
    fig, axes = plt.subplots(2 * len(picked), frames, figsize=(frames * 0.9, 2 * len(picked) * 0.95))
    for row, (record, clip) in enumerate(zip(picked, real, strict=True)):
        for column in range(frames):
            for offset, source, label in ((0, clip, "real"), (1, generated[row], "generated")):
                axis = axes[2 * row + offset][column]
                axis.imshow(source[column], cmap="gray", vmin=0, vmax=255)
                axis.set_xticks([])
                axis.set_yticks([])
                if column == 0:
                    axis.set_ylabel(f"{label}\n{record.class_name}", fontsize=6)
    fig.tight_layout(pad=0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_table(runs: dict[str, Path]) -> str:
    lines = ["| stage | steps | last loss | seconds | data manifest sha256 |", "|---|---|---|---|---|"]
    for stage, run_dir in runs.items():
        meta = json.loads((run_dir / FINAL_DIR / METADATA_FILE).read_text())
        lines.append(
            f"| {stage} | {meta['step']} | {meta['last_loss']:.4f} | {meta['train_seconds']:.0f} "
            f"| `{meta['data_manifest_checksum'][:16]}…` |"
        )
    return "\n".join(lines)


def write_report(
    runs_dir: Path,
    model_dir: Path,
    data_dir: Path,
    figures_dir: Path,
    markdown: Path,
    timings: dict[str, float] | None = None,
) -> None:
    """Loss curves and the grid into `figures_dir`; the run summary between `markdown`'s demo-run markers."""
    from generator.model_info import model_checksum
    from ingest.manifest import manifest_checksum

    runs = {stage: runs_dir / stage for stage in STAGES if (runs_dir / stage).is_dir()}
    curves = plot_loss_curves(runs, figures_dir / "loss_curves.png")
    grid = real_vs_generated(model_dir, data_dir, figures_dir / "real_vs_generated.png")
    relative = markdown.parent
    section = [
        MARK_START,
        f"Data manifest SHA-256: `{manifest_checksum(data_dir / 'manifest.jsonl')}`  ",
        f"Model checksum ({model_dir.name}): `{model_checksum(model_dir)}`",
        "",
        summary_table(runs),
        "",
    ]
    if timings:
        section += [
            "Wall-clock seconds per command: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
            "",
        ]
    section += [
        f"![loss curves]({curves.relative_to(relative)})",
        "",
        f"![real vs generated]({grid.relative_to(relative)})",
        MARK_END,
    ]
    text = markdown.read_text() if markdown.is_file() else ""
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + "\n".join(section) + rest.split(MARK_END, 1)[1]
    else:
        text = text + "\n" + "\n".join(section) + "\n"
    markdown.write_text(text)
