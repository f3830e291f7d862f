"""Intensity windows to 8-bit grayscale: fixed HU windows for CT, percentile clipping otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

DEFAULT_CT_WINDOW = "ct:-1000,400"
DEFAULT_OTHER_WINDOW = "percentile:1,99"


@dataclass(frozen=True)
class WindowSpec:
    """`ct:LOW,HIGH` maps values (HU) in [LOW, HIGH] to 0..255; `percentile:P_LOW,P_HIGH` maps
    the sequence's own P_LOW..P_HIGH percentiles to 0..255. Values outside are clipped."""

    kind: Literal["ct", "percentile"]
    low: float
    high: float

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        kind, sep, bounds = text.strip().partition(":")
        if not sep or kind not in ("ct", "percentile"):
            raise ValueError(f"window {text!r}: expected 'ct:LOW,HIGH' or 'percentile:LOW,HIGH'")
        try:
            low, high = (float(v) for v in bounds.split(","))
        except ValueError:
            raise ValueError(f"window {text!r}: bounds must be two numbers 'LOW,HIGH'") from None
        if not low < high:
            raise ValueError(f"window {text!r}: LOW must be below HIGH")
        if kind == "percentile" and not (0.0 <= low and high <= 100.0):
            raise ValueError(f"window {text!r}: percentiles must lie in [0, 100]")
        return cls("ct" if kind == "ct" else "percentile", low, high)

    def __str__(self) -> str:
        return f"{self.kind}:{self.low:g},{self.high:g}"

    def bounds_for(self, frames: np.ndarray) -> tuple[float, float]:
        """The (low, high) values mapped to 0 and 255 for these frames."""
        if self.kind == "ct":
            return self.low, self.high
        low, high = np.percentile(frames, [self.low, self.high])
        return float(low), float(high)


def default_window(modality: str | None) -> WindowSpec:
    """CT gets a fixed HU window; every other modality percentile clipping."""
    return WindowSpec.parse(DEFAULT_CT_WINDOW if modality == "CT" else DEFAULT_OTHER_WINDOW)


def apply_window(frames: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly to [0, 255] (float32, clipped); a flat window gives zeros."""
    if high <= low:
        return np.zeros(frames.shape, dtype=np.float32)
    scaled = (frames.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.clip(scaled, 0.0, 255.0)


def rgb_to_luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of `(..., 3)` RGB as float32 — the weights of PIL's `convert("L")`,
    written out because PIL takes only 8-bit single images and this runs on whole sequences."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return rgb[..., :3].astype(np.float32) @ weights
