"""Algorithm 1 (paper §3.5) over precomputed per-clip scores: what is kept, and why the rest is dropped;
optionally between two checks against the real training data (`memorised` before, `off_manifold` after)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from filter.consistency import consistency_band, vae_seq
from filter.reference import ReferenceScores
from filter.scores import check_scores
from filter.semantic import group_thresholds, semantic_keep
from filter.settings import FilterSettings, ReferenceSettings
from filter.similarity import greedy_dedupe

__all__ = [
    "REASONS",
    "STAGES",
    "ClipDecision",
    "FilterResult",
    "FilterSettings",
    "ReferenceSettings",
    "run_filter",
]

# reason code i (1-based) is REASONS[i - 1]; code 0 means kept
REASONS = ("semantic", "inconsistent", "static", "duplicate", "memorised", "off_manifold")
# in the order clips meet them; `memorised` and `off_manifold` run only when switched on
STAGES = ("memorised", "semantic", "inner_sequence", "inter_sequence", "off_manifold")
STAGE_OF_REASON = {
    "memorised": "memorised",
    "semantic": "semantic",
    "inconsistent": "inner_sequence",
    "static": "inner_sequence",
    "duplicate": "inter_sequence",
    "off_manifold": "off_manifold",
}
REFERENCE_KEYS = ("real_distance", "real_clip", "manifold_share", "memorised", "off_manifold")
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
    real_distance: float | None = None
    real_clip: str | None = None
    manifold_share: float | None = None
    memorised: bool | None = None
    off_manifold: bool | None = None

    @property
    def stage(self) -> str | None:
        """The stage that dropped the clip (`semantic`, `inner_sequence`, `inter_sequence`), None if kept."""
        return None if self.reason is None else STAGE_OF_REASON[self.reason]


@dataclass(frozen=True)
class FilterResult:
    """Per-clip arrays (index = position in the input) plus the job-level band and the settings used.

    `checks` and `reference` are None when neither reference check ran; `group_threshold` is NaN for a clip
    dropped as memorised (it never joined a group), and the band NaN when no clip reached Algorithm 1.
    """

    settings: FilterSettings
    band: tuple[float, float]
    reason_code: np.ndarray
    loss: np.ndarray
    group_threshold: np.ndarray
    vae_seq: np.ndarray
    theta: np.ndarray
    checks: ReferenceSettings | None = None
    reference: ReferenceScores | None = None

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
        for stage in self.stages():
            by_reason = {r: int(counts[_CODE[r]]) for r in REASONS if STAGE_OF_REASON[r] == stage}
            dropped = sum(by_reason.values())
            out[stage] = {"in": remaining, "kept": remaining - dropped, "dropped": dropped, **by_reason}
            remaining -= dropped
        return out

    def stages(self) -> list[str]:
        """The stages that ran, in order: Algorithm 1's three and the reference checks switched on."""
        checks = self.checks or ReferenceSettings()
        return [
            stage for stage in STAGES if stage not in ReferenceSettings.model_fields or getattr(checks, stage)
        ]

    def to_json(self) -> dict[str, Any]:
        """`{"band": [t_l, t_h], "settings": {...}, "clips": [...]}`, plus `"checks"` and five keys per clip
        (`REFERENCE_KEYS`) when a reference check ran; None where a value is undefined."""
        out: dict[str, Any] = {
            "band": [_finite(self.band[0]), _finite(self.band[1])],
            "settings": self.settings.model_dump(mode="json"),
            "clips": self._rows(),
        }
        if self.checks is not None:
            out["checks"] = {
                **self.checks.model_dump(mode="json"),
                "feature_space": self.checks.feature_space(),
            }
        return out

    def _verdicts(self) -> tuple[list[bool | None], list[bool | None]]:
        assert self.checks is not None and self.reference is not None
        n = self.reason_code.size
        memorised: list[bool | None] = [None] * n
        off: list[bool | None] = [None] * n
        if self.checks.memorised:
            assert self.checks.memorised_threshold is not None
            memorised = (self.reference.real_distance < self.checks.memorised_threshold).tolist()
        if self.checks.off_manifold:
            off = (self.reference.manifold_share < self.checks.manifold_min_share).tolist()
        return memorised, off

    def _rows(self) -> list[dict[str, Any]]:
        reasons = [None, *REASONS]
        rows = [
            {
                "index": index,
                "kept": code == 0,
                "reason": reasons[code],
                "loss": loss,
                "group_threshold": _finite(threshold),
                "vae_seq": seq,
                "theta": _finite(theta),
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
        if self.checks is None or self.reference is None:
            return rows
        memorised, off = self._verdicts()
        for row, distance, clip, share, is_memorised, is_off in zip(
            rows,
            self.reference.real_distance.tolist(),
            self.reference.real_clip.tolist(),
            self.reference.manifold_share.tolist(),
            memorised,
            off,
            strict=True,
        ):
            row.update(
                real_distance=distance,
                real_clip=clip,
                manifold_share=share,
                memorised=is_memorised,
                off_manifold=is_off,
            )
        return rows


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def run_filter(
    group: np.ndarray,
    loss: np.ndarray,
    latents: np.ndarray,
    settings: FilterSettings | None = None,
    checks: ReferenceSettings | None = None,
    reference: ReferenceScores | None = None,
) -> FilterResult:
    """Algorithm 1 on N clips: `group` (N,) bank ids, `loss` (N,) cross-entropy, `latents` (N, F, ...).

    Stage 3 visits surviving clips group by group (groups in sorted id order), each group in clip
    index order; with `scope="job"` a clip is compared with the clips kept in earlier groups too.
    With `checks` switched on (`reference` holds the clips' scores against the real training data), clips
    closer than `memorised_threshold` to a real clip are dropped before Algorithm 1 and never enter it, and
    Algorithm 1's survivors with less than `manifold_min_share` of their frames on the real manifold after it.
    """
    settings = settings or FilterSettings()
    if checks is None or not checks.enabled:
        return _algorithm_1(group, loss, latents, settings)
    scores = check_scores(group, loss, latents)
    n = scores.loss.shape[0]
    if reference is None or any(np.shape(getattr(reference, f)) != (n,) for f in REFERENCE_KEYS[:3]):
        raise ValueError(f"field 'reference': the reference checks need {n} clips' reference scores")
    if checks.memorised and checks.memorised_threshold is None:
        raise ValueError("field 'memorised_threshold': the memorised check needs a threshold")
    memorised = np.zeros(n, bool)
    if checks.memorised:
        assert checks.memorised_threshold is not None
        memorised = reference.real_distance < checks.memorised_threshold
    reason_code = np.full(n, _CODE["memorised"], dtype=np.int8)
    group_threshold, theta = np.full(n, np.nan), np.full(n, np.nan)
    band = (math.nan, math.nan)
    entered = np.flatnonzero(~memorised)
    if entered.size:
        inner = _algorithm_1(scores.group[entered], scores.loss[entered], scores.latents[entered], settings)
        reason_code[entered] = inner.reason_code
        group_threshold[entered], theta[entered] = inner.group_threshold, inner.theta
        band = inner.band
    if checks.off_manifold:
        off = reference.manifold_share < checks.manifold_min_share
        reason_code[(reason_code == 0) & off] = _CODE["off_manifold"]
    return FilterResult(
        settings=settings,
        band=band,
        reason_code=reason_code,
        loss=scores.loss,
        group_threshold=group_threshold,
        vae_seq=vae_seq(scores.latents),
        theta=theta,
        checks=checks,
        reference=reference,
    )


def _algorithm_1(
    group: np.ndarray, loss: np.ndarray, latents: np.ndarray, settings: FilterSettings
) -> FilterResult:
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
