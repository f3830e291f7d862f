"""Frames of untrusted bytes, fitted as they decode: the first `keep_frames` frames, each shrunk into
`keep_height`×`keep_width` (aspect kept), then one min-max scaling to uint8."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ingest.readers.budget import Deadline, MediaRejected


def fitted_size(height: int, width: int, keep_height: int, keep_width: int) -> tuple[int, int]:
    """(height, width) shrunk to fit `keep_height`×`keep_width` with the aspect ratio kept; never enlarged."""
    scale = min(1.0, keep_height / height, keep_width / width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Grayscale uint8; other intensities are min-max scaled over the whole array (no window known here)."""
    if array.dtype == np.uint8:
        return array
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise MediaRejected("array holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round((values - low) * scale).astype(np.uint8)


class FrameCollector:
    """Takes decoded frames one at a time and keeps what a model can use, so memory holds one source frame
    plus the kept, shrunk ones."""

    def __init__(self, keep_frames: int, keep_height: int, keep_width: int, deadline: Deadline) -> None:
        self.keep_frames = keep_frames
        self.keep_height = keep_height
        self.keep_width = keep_width
        self.deadline = deadline
        self._frames: list[np.ndarray] = []
        self._uint8 = True

    @property
    def full(self) -> bool:
        return len(self._frames) >= self.keep_frames

    def add(self, frame: np.ndarray) -> None:
        """One grayscale frame (H, W) of any numeric dtype."""
        self.deadline.check()
        if frame.dtype.kind not in "biuf":
            raise MediaRejected(f"array dtype {frame.dtype} is not numeric")
        height, width = frame.shape
        size = fitted_size(height, width, self.keep_height, self.keep_width)
        self._uint8 = self._uint8 and frame.dtype == np.uint8
        if size != (height, width):
            if frame.dtype == np.uint8:
                frame = np.asarray(Image.fromarray(frame).resize(size[::-1], Image.Resampling.BILINEAR))
            else:
                shrunk = Image.fromarray(frame.astype(np.float32)).resize(
                    size[::-1], Image.Resampling.BILINEAR
                )
                frame = np.asarray(shrunk)
        self._frames.append(frame)

    def frames(self) -> np.ndarray:
        """The kept frames as uint8 (F, H, W), min-max scaled together unless they were uint8 already."""
        if not self._frames:
            raise MediaRejected("no decodable frames")
        stacked = np.stack(self._frames)
        return stacked if self._uint8 else to_uint8(stacked)
