"""Frames of an upload, fitted as they decode: the first `keep_frames` frames, each shrunk into
`keep_height`×`keep_width` (aspect kept), then one min-max scaling to uint8; and the upload's time budget."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image


class UploadRejected(ValueError):
    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


class Deadline:
    """The wall-clock budget of one upload, checked between frames."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._ends:
            raise UploadRejected(
                f"file: decoding took longer than the upload budget of {self.seconds:g} s "
                "(max_upload_seconds)",
                413,
            )


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
        raise UploadRejected("file: array holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round((values - low) * scale).astype(np.uint8)


def luminance(pixels: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB(A) pixels (…, 3|4) as float32."""
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return pixels[..., :3].astype(np.float32) @ weights


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
            raise UploadRejected(f"file: array dtype {frame.dtype} is not numeric")
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
            raise UploadRejected("file: no decodable frames")
        stacked = np.stack(self._frames)
        return stacked if self._uint8 else to_uint8(stacked)
