"""Evaluation report files: report.json, report.md (a Table 3-style summary) and roc.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from classify.metrics import roc_curves

PARADIGM_LETTERS = {"baseline": "A", "real-finetune": "B", "joint-train": "C"}


def _ci(entry: dict[str, Any], scale: float, digits: int) -> str:
    if "estimate" not in entry:
        return f"n/a ({entry.get('error', 'not computed')})"
    estimate, low, high = (entry[key] * scale for key in ("estimate", "low", "high"))
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _delta(value: float | None, scale: float, digits: int) -> str:
    if value is None:
        return "—"
    arrow = "↑" if value > 0 else "↓" if value < 0 else "="
    return f"{arrow} {abs(value) * scale:.{digits}f}"


def _mcnemar(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "—"
    return f"{entry['p_value']:.4f} ({entry['test']}, b={entry['b']}, c={entry['c']})"


def _synthesis_lines(synthesis: dict[str, Any]) -> list[str]:
    lines = ["", "## Synthesis metrics (§4.2)", "", "| metric | value | note |", "|---|---|---|"]
    for name, entry in synthesis.items():
        value = entry.get("value")
        shown = (
            "not computed" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
        )
        lines.append(f"| {name} | {shown} | {entry.get('note', '')} |")
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    level = int(round(report["settings"]["ci_level"] * 100))
    test_counts = dict(zip(report["class_names"], report["data"]["real_test"], strict=True))
    lines = [
        f"# Downstream evaluation: {report['classifier']} ({report['family']})",
        "",
        f"Real test clips per class: {test_counts}. "
        f"{level}% CIs: percentile bootstrap over the test set, {report['settings']['bootstrap_resamples']} "
        "resamples. Δ and McNemar's test against the Baseline (A) on the same test set.",
        "",
        f"| Paradigm | Acc. (%) [{level}% CI] | Δ Acc. | AUROC [{level}% CI] | Δ AUROC | McNemar p vs A |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in report["paradigms"].items():
        delta = entry.get("delta_vs_baseline", {})
        letter = PARADIGM_LETTERS.get(name, "?")
        accuracy_delta = _delta(delta.get("accuracy"), 100, 2)
        lines.append(
            f"| {letter} {name} | {_ci(entry['accuracy'], 100, 2)} | {accuracy_delta} | "
            f"{_ci(entry['auroc'], 1, 3)} | {_delta(delta.get('auroc'), 1, 3)} | "
            f"{_mcnemar(entry.get('mcnemar_vs_baseline'))} |"
        )
    lines += ["", "## Per-class metrics", ""]
    for name, entry in report["paradigms"].items():
        lines += [
            f"### {name}",
            "",
            "| class | sensitivity | specificity | precision | F1 | support |",
            "|---|---|---|---|---|---|",
        ]
        for row in entry["per_class"]:
            lines.append(
                f"| {row['class']} | {row['sensitivity']:.4f} | {row['specificity']:.4f} | "
                f"{row['precision']:.4f} | {row['f1']:.4f} | {row['support']} |"
            )
        lines.append("")
    data = report["data"]
    lines += [
        "## Training data",
        "",
        f"- real training clips per class: {data['real_train']}",
        f"- synthetic clips per class: {data['synthetic']}",
    ]
    if "imbalance" in data:
        lines.append(f"- class-skewed setting (§4.6): {data['imbalance']}")
    for name, entry in report["paradigms"].items():
        stages = ", ".join(
            f"{stage['stage']}: {stage['clips']} clips {stage['class_counts']}" for stage in entry["stages"]
        )
        lines.append(f"- {name}: {stages}")
    if report.get("synthesis"):
        lines += _synthesis_lines(report["synthesis"])
    return "\n".join(lines) + "\n"


def plot_roc(report: dict[str, Any], path: Path) -> Path:
    """One panel per class (one-vs-rest; the positive class only when binary), one curve per paradigm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    class_names = report["class_names"]
    panels = [1] if len(class_names) == 2 else list(range(len(class_names)))
    y_true = np.asarray(report["test_labels"])
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for paradigm, entry in report["paradigms"].items():
        curves = roc_curves(y_true, np.asarray(entry["probabilities"]))
        for axis, k in zip(axes[0], panels, strict=True):
            curve = curves[k]
            if curve is not None:
                fpr, tpr = curve
                axis.plot(fpr, tpr, label=f"{PARADIGM_LETTERS.get(paradigm, '?')} {paradigm}")
    for axis, k in zip(axes[0], panels, strict=True):
        axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        axis.set(
            title=f"{class_names[k]} vs rest",
            xlabel="false positive rate",
            ylabel="true positive rate",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        axis.legend(loc="lower right", fontsize="small")
    figure.suptitle(f"ROC — {report['classifier']}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "roc": out / "roc.png"}
    paths["json"].write_text(json.dumps(report, indent=2))
    paths["markdown"].write_text(markdown_report(report))
    plot_roc(report, paths["roc"])
    return paths
