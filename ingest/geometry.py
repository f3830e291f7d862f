"""Frame geometry: an optional region of interest, then a centred square crop, then a resize."""

from __future__ import annotations

import numpy as np
from PIL import Image


def parse_roi(text: str) -> tuple[slice, slice]:
    """`"Y0:Y1,X0:X1"` (source pixels, end exclusive) → (row slice, column slice)."""
    try:
        rows, cols = (tuple(int(v) for v in part.split(":")) for part in text.split(","))
        (y0, y1), (x0, x1) = rows, cols
    except ValueError:
        raise ValueError(f"roi {text!r}: expected 'Y0:Y1,X0:X1' in pixels") from None
    if not (0 <= y0 < y1 and 0 <= x0 < x1):
        raise ValueError(f"roi {text!r}: needs 0 <= Y0 < Y1 and 0 <= X0 < X1")
    return slice(y0, y1), slice(x0, x1)


def crop_roi(frames: np.ndarray, roi: tuple[slice, slice]) -> np.ndarray:
    rows, cols = roi
    height, width = frames.shape[1:]
    if rows.stop > height or cols.stop > width:
        raise ValueError(
            f"roi rows {rows.start}:{rows.stop}, cols {cols.start}:{cols.stop} "
            f"exceeds the {height}x{width} frames"
        )
    return frames[:, rows, cols]


def centre_square(frames: np.ndarray, pixel_spacing: tuple[float, float] | None = None) -> np.ndarray:
    """Crop the centred square of equal physical side (pixels are square when spacing is unknown),
    so the later resize keeps the anatomy's aspect ratio."""
    height, width = frames.shape[1:]
    row_mm, col_mm = pixel_spacing or (1.0, 1.0)
    side_mm = min(height * row_mm, width * col_mm)
    crop_h = max(1, min(height, round(side_mm / row_mm)))
    crop_w = max(1, min(width, round(side_mm / col_mm)))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return frames[:, top : top + crop_h, left : left + crop_w]


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize float frames to `size`×`size` with Pillow's antialiased bilinear filter (float32)."""
    if frames.shape[1:] == (size, size):
        return frames.astype(np.float32, copy=False)
    resized = [
        np.asarray(Image.fromarray(frame.astype(np.float32)).resize((size, size), Image.Resampling.BILINEAR))
        for frame in frames
    ]
    return np.stack(resized).astype(np.float32, copy=False)
