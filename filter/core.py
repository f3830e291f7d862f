"""Algorithm 1 (paper §3.5) over precomputed per-clip scores: what is kept, and why the rest is dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from filter.consistency import consistency_band, vae_seq
from filter.scores import check_scores
from filter.semantic import group_thresholds, semantic_keep
from filter.settings import FilterSettings
from filter.similarity import greedy_dedupe

__all__ = ["REASONS", "STAGES", "ClipDecision", "FilterResult", "FilterSettings", "run_filter"]

# reason code i (1-based) is REASONS[i - 1]; code 0 means kept
REASONS = ("semantic", "inconsistent", "static", "duplicate")
STAGES = ("semantic", "inner_sequence", "inter_sequence")
STAGE_OF_REASON = {
    "semantic": "semantic",
    "inconsistent": "inner_sequence",
    "static": "inner_sequence",
    "duplicate": "inter_sequence",
}
_CODE = {reason: code for code, reason in enumerate(REASONS, start=1)}


@dataclass(frozen=True)
class ClipDecision:
    """One clip's outcome; `theta` is None if it never reached stage 3 or no clip was kept before it."""

    index: int
    kept: bool
    reason: str | None
    loss: float
    group_threshold: float
    vae_seq: float
    theta: float | None

    @property
    def stage(self) -> str | None:
        """The stage that dropped the clip (`semantic`, `inner_sequence`, `inter_sequence`), None if kept."""
        return None if self.reason is None else STAGE_OF_REASON[self.reason]


@dataclass(frozen=True)
class FilterResult:
    """Per-clip arrays (index = position in the input) plus the job-level band and the settings used."""

    settings: FilterSettings
    band: tuple[float, float]
    reason_code: np.ndarray
    loss: np.ndarray
    group_threshold: np.ndarray
    vae_seq: np.ndarray
    theta: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        return self.reason_code == 0

    def kept_indices(self) -> np.ndarray:
        return np.flatnonzero(self.kept)

    @cached_property
    def clips(self) -> list[ClipDecision]:
        return [ClipDecision(**row) for row in self._rows()]

    def stage_counts(self) -> dict[str, dict[str, int]]:
        """Per stage: clips in, kept, dropped (and per reason for the stage's own reasons)."""
        counts = np.bincount(self.reason_code, minlength=len(REASONS) + 1)
        remaining = int(self.reason_code.size)
        out: dict[str, dict[str, int]] = {}
        for stage in STAGES:
            by_reason = {r: int(counts[_CODE[r]]) for r in REASONS if STAGE_OF_REASON[r] == stage}
            dropped = sum(by_reason.values())
            out[stage] = {"in": remaining, "kept": remaining - dropped, "dropped": dropped, **by_reason}
            remaining -= dropped
        return out

    def to_json(self) -> dict[str, Any]:
        """`{"band": [t_l, t_h], "settings": {...}, "clips": [...]}`; None where a value is undefined."""
        return {
            "band": [self.band[0], self.band[1]],
            "settings": self.settings.model_dump(mode="json"),
            "clips": self._rows(),
        }

    def _rows(self) -> list[dict[str, Any]]:
        reasons = [None, *REASONS]
        return [
            {
                "index": index,
                "kept": code == 0,
                "reason": reasons[code],
                "loss": loss,
                "group_threshold": threshold,
                "vae_seq": seq,
                "theta": None if math.isnan(theta) else theta,
            }
            for index, (code, loss, threshold, seq, theta) in enumerate(
                zip(
                    self.reason_code.tolist(),
                    self.loss.tolist(),
                    self.group_threshold.tolist(),
                    self.vae_seq.tolist(),
                    self.theta.tolist(),
                    strict=True,
                )
            )
        ]


def run_filter(
    group: np.ndarray, loss: np.ndarray, latents: np.ndarray, settings: FilterSettings | None = None
) -> FilterResult:
    """Algorithm 1 on N clips: `group` (N,) bank ids, `loss` (N,) cross-entropy, `latents` (N, F, ...).

    Stage 3 visits surviving clips group by group (groups in sorted id order), each group in clip
    index order; with `scope="job"` a clip is compared with the clips kept in earlier groups too.
    """
    settings = settings or FilterSettings()
    scores = check_scores(group, loss, latents)
    n = scores.loss.shape[0]
    reason_code = np.zeros(n, dtype=np.int8)

    thresholds = group_thresholds(scores.group, scores.loss, settings.alpha)
    reason_code[~semantic_keep(scores.loss, thresholds)] = _CODE["semantic"]

    seq = vae_seq(scores.latents)
    bad = np.flatnonzero(~np.isfinite(seq))
    if bad.size:
        raise ValueError(f"field 'latents' has non-finite values (first at clip {bad[0]})")
    # the band comes from all clips of the job, before stage 1 (Alg. 1 lines 20-22)
    t_low, t_high = consistency_band(seq, settings.kmeans_k, settings.kmeans_seed)
    survivors = reason_code == 0
    reason_code[survivors & (seq < t_low)] = _CODE["inconsistent"]
    reason_code[survivors & (seq > t_high)] = _CODE["static"]

    theta = np.full(n, np.nan)
    _, group_index = np.unique(scores.group, return_inverse=True)
    survivors = np.flatnonzero(reason_code == 0)
    order = survivors[np.argsort(group_index[survivors], kind="stable")]
    if settings.scope == "job":
        passes = [order]
    else:
        passes = np.split(order, np.flatnonzero(np.diff(group_index[order])) + 1)
    for visit in passes:
        kept, nearest = greedy_dedupe(scores.latents, visit, settings.similarity_threshold)
        reason_code[visit[~kept]] = _CODE["duplicate"]
        theta[visit] = nearest

    return FilterResult(
        settings=settings,
        band=(t_low, t_high),
        reason_code=reason_code,
        loss=scores.loss,
        group_threshold=thresholds,
        vae_seq=seq,
        theta=theta,
    )
