"""What reading untrusted bytes may cost: header-first limits, a wall-clock budget, bounded reads.

Every check runs on headers before any pixel is decoded, so an oversized or lying file is refused early.
"""

from __future__ import annotations

import gzip
import time
from dataclasses import dataclass
from typing import IO

import numpy as np

from ingest.errors import IngestError

CHUNK_BYTES = 1 << 20
Readable = IO[bytes] | gzip.GzipFile


class MediaRejected(IngestError):
    """Bytes that are not read: `too_large` when a limit refused them, else they are broken or not media."""

    def __init__(self, reason: str, too_large: bool = False) -> None:
        super().__init__("file", reason)
        self.too_large = too_large


@dataclass(frozen=True)
class ReadLimits:
    """Header limits (refused before decoding) and what is kept of decoded bytes: the first `keep_frames`
    frames, each shrunk into `keep_height`×`keep_width`, within `max_seconds`."""

    max_bytes: int
    max_pixels: int
    max_frames: int
    max_voxels: int
    keep_frames: int
    keep_height: int
    keep_width: int
    max_seconds: float


class Deadline:
    """The wall-clock budget of one read, checked between frames."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._ends = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._ends:
            raise MediaRejected(
                f"decoding took longer than the upload budget of {self.seconds:g} s (max_upload_seconds)",
                too_large=True,
            )


def check_frames(count: int, height: int, width: int, limits: ReadLimits) -> None:
    if count > limits.max_frames:
        raise MediaRejected(f"{count} frames exceed the limit of {limits.max_frames}", too_large=True)
    if height * width > limits.max_pixels:
        raise MediaRejected(
            f"{height}×{width} pixels per frame exceed the limit of {limits.max_pixels}", too_large=True
        )


def check_values(shape: tuple[int, ...], limits: ReadLimits) -> None:
    values = int(np.prod(shape, dtype=np.int64))
    if values > limits.max_voxels:
        raise MediaRejected(
            f"array of shape {tuple(shape)} exceeds the limit of {limits.max_voxels} values", too_large=True
        )


def read_exactly(stream: Readable, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise MediaRejected(f"truncated {what}: {len(data)} of {size} bytes")
    return data


def skip(stream: Readable, size: int, what: str, deadline: Deadline) -> None:
    """Read past `size` bytes in bounded pieces (a gzip stream inflates them, nothing is kept)."""
    while size > 0:
        deadline.check()
        size -= len(read_exactly(stream, min(size, CHUNK_BYTES), what))
