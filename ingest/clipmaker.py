"""From one read sequence to uint8 clips: ROI, intensity window, square crop, resize (paper §4.1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.clips import clip_indices, clip_starts
from ingest.geometry import centre_square, crop_roi, parse_roi, resize_frames
from ingest.intensity import WindowSpec, apply_window
from ingest.sequence import RawSequence


@dataclass(frozen=True)
class ClipOptions:
    frames: int
    stride: int
    size: int
    window: WindowSpec
    roi: str | None = None


@dataclass(frozen=True)
class Clip:
    start: int
    frames: np.ndarray  # uint8 (F, size, size)


def make_clips(sequence: RawSequence, options: ClipOptions) -> list[Clip]:
    """Every non-overlapping clip of the sequence. The window bounds come from the whole sequence
    (one mapping for all its clips); the crop keeps the centred square of equal physical side."""
    frames = sequence.frames
    if not np.isfinite(frames).all():
        raise ValueError("values include NaN or infinity")
    if options.roi:
        frames = crop_roi(frames, parse_roi(options.roi))
    low, high = options.window.bounds_for(frames)
    clips = []
    for start in clip_starts(frames.shape[0], options.frames, options.stride):
        windowed = apply_window(frames[clip_indices(start, options.frames, options.stride)], low, high)
        if sequence.inverted:
            windowed = 255.0 - windowed
        resized = resize_frames(centre_square(windowed, sequence.pixel_spacing), options.size)
        clips.append(Clip(start, np.clip(np.rint(resized), 0, 255).astype(np.uint8)))
    return clips
