"""Motion fields from H.264 codec motion vectors (paper §3.3 "Sequential Condition"), decoded with PyAV.

A block's vector is `source * (motion_x, motion_y) / motion_scale` (pixels, forward in time whichever way
the block references) and fills the block's `w x h` pixels centred on `(dst_x, dst_y)`; pixels covered by
no inter block (intra blocks) are zero, pixels covered by two vectors (bi-prediction) get their mean, and
frame 0 is zero. Arrays and non-H.264 videos are (re-)encoded with libx264 first, with the settings below.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import torch
import torch.nn.functional as F

# Column order of `mvextractor` (the tool the paper cites), so vectors from both compare directly.
VECTOR_COLUMNS = (
    "source",
    "w",
    "h",
    "src_x",
    "src_y",
    "dst_x",
    "dst_y",
    "motion_x",
    "motion_y",
    "motion_scale",
)


@dataclass(frozen=True)
class H264Settings:
    """libx264 settings for clips given as arrays: one I-frame then P-frames referencing the previous frame
    only (no B-frames, no scene-cut keyframes), single-threaded so the bitstream is deterministic."""

    preset: str = "medium"
    crf: int = 18
    frame_rate: int = 25

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in [0, 51], got {self.crf}")

    def codec_options(self, num_frames: int) -> dict[str, str]:
        keyint = max(num_frames, 1)
        x264 = f"keyint={keyint}:min-keyint={keyint}:scenecut=0:bframes=0:ref=1:threads=1"
        return {"preset": self.preset, "crf": str(self.crf), "x264-params": x264}


def _check_frames(frames: np.ndarray) -> np.ndarray:
    array = np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 3:
        raise ValueError(f"frames must be uint8 (F, H, W), got {array.dtype} {array.shape}")
    if array.shape[0] < 1 or min(array.shape[1:]) < 2:
        raise ValueError(f"frames must hold at least one frame of at least 2x2 pixels, got {array.shape}")
    return array


def encode_h264(frames: np.ndarray, settings: H264Settings | None = None) -> bytes:
    """Grayscale uint8 `(F, H, W)` -> a raw H.264 (Annex B) stream; odd sizes are edge-padded to even."""
    frames = _check_frames(frames)
    settings = settings or H264Settings()
    num_frames, height, width = frames.shape
    padded = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2)), mode="edge")
    chroma = np.full((padded.shape[1] // 2, padded.shape[2]), 128, dtype=np.uint8)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="h264") as container:
        stream = container.add_stream("libx264", rate=settings.frame_rate)
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], "yuv420p"
        stream.codec_context.options = settings.codec_options(num_frames)
        for frame in padded:
            planes = np.concatenate([frame, chroma])  # yuv420p layout: Y plane, then U and V (neutral gray)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def read_motion_vectors(
    source: str | Path | BinaryIO, max_frames: int | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Per decoded frame: `(height, width, vectors)`, vectors int32 `(K, 10)` in `VECTOR_COLUMNS` order."""
    with av.open(source, mode="r", format="h264" if isinstance(source, io.BytesIO) else None) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for index, frame in enumerate(container.decode(stream)):
            if max_frames is not None and index >= max_frames:
                return
            side_data = frame.side_data.get("MOTION_VECTORS")
            if side_data is None:
                vectors = np.zeros((0, len(VECTOR_COLUMNS)), dtype=np.int32)
            else:
                table = side_data.to_ndarray()
                vectors = np.stack([table[name].astype(np.int32) for name in VECTOR_COLUMNS], axis=1)
            yield frame.height, frame.width, vectors


def motion_vectors_to_field(vectors: np.ndarray, height: int, width: int) -> np.ndarray:
    """Block vectors `(K, 10)` -> dense float32 `(2, H, W)` (dx, dy in pixels)."""
    total = np.zeros((2, height, width), dtype=np.float64)
    count = np.zeros((height, width), dtype=np.int32)
    column = {name: vectors[:, i] for i, name in enumerate(VECTOR_COLUMNS)}
    dx = column["source"] * column["motion_x"] / column["motion_scale"]
    dy = column["source"] * column["motion_y"] / column["motion_scale"]
    x0 = np.clip(column["dst_x"] - column["w"] // 2, 0, width)
    y0 = np.clip(column["dst_y"] - column["h"] // 2, 0, height)
    x1 = np.clip(column["dst_x"] - column["w"] // 2 + column["w"], 0, width)
    y1 = np.clip(column["dst_y"] - column["h"] // 2 + column["h"], 0, height)
    for k in range(len(vectors)):
        total[0, y0[k] : y1[k], x0[k] : x1[k]] += dx[k]
        total[1, y0[k] : y1[k], x0[k] : x1[k]] += dy[k]
        count[y0[k] : y1[k], x0[k] : x1[k]] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)


def _is_h264(path: Path) -> bool:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"source {path} has no video stream")
        return container.streams.video[0].codec_context.name == "h264"


def _decode_gray(path: Path, max_frames: int | None) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = []
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if max_frames is not None and index >= max_frames:
                break
            frames.append(frame.to_ndarray(format="gray"))
    return np.stack(frames)


def extract_motion_field(
    source: str | Path | np.ndarray,
    *,
    max_frames: int | None = None,
    settings: H264Settings | None = None,
) -> np.ndarray:
    """Motion field float32 `(F, 2, H, W)`, one entry per decoded frame (frame 0 is zero).

    `source`: an H.264 video file (its own motion vectors are used), another video file (decoded to gray
    and re-encoded), or grayscale uint8 frames `(F, H, W)` (encoded with `settings`).
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    crop: tuple[int, int] | None = None
    if isinstance(source, np.ndarray):
        frames = _check_frames(source)[:max_frames]
        crop = frames.shape[1:]
        stream: str | BinaryIO = io.BytesIO(encode_h264(frames, settings))
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"source {path} is not a file")
        if _is_h264(path):
            stream = str(path)
        else:
            frames = _decode_gray(path, max_frames)
            crop = frames.shape[1:]
            stream = io.BytesIO(encode_h264(frames, settings))
    fields = [
        motion_vectors_to_field(vectors, height, width)
        for height, width, vectors in read_motion_vectors(stream, max_frames)
    ]
    field = np.stack(fields)
    field[0] = 0.0
    if crop is not None:
        field = field[:, :, : crop[0], : crop[1]]
    return np.ascontiguousarray(field)


def resize_motion_field(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize `(F, 2, H, W)` to `(F, 2, *size)`, scaling dx by the width ratio and dy by the height ratio."""
    if field.ndim != 4 or field.shape[1] != 2:
        raise ValueError(f"field must have shape (F, 2, H, W), got {field.shape}")
    height, width = field.shape[2:]
    new_height, new_width = size
    if new_height < 1 or new_width < 1:
        raise ValueError(f"size must be positive, got {size}")
    resized = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(field, dtype=np.float32)),
        size=(new_height, new_width),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    scale = torch.tensor([new_width / width, new_height / height]).view(1, 2, 1, 1)
    return (resized * scale).numpy()
