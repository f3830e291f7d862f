"""Videos (MP4, AVI, …) decoded with PyAV straight to 8-bit luma."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from ingest.errors import IngestError
from ingest.sequence import RawSequence

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")


def read_video(path: Path) -> list[RawSequence]:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise IngestError(path.name, "the file has no video stream")
            stream = container.streams.video[0]
            aspect = stream.codec_context.sample_aspect_ratio
            frames = [frame.to_ndarray(format="gray") for frame in container.decode(stream)]
    except av.FFmpegError as exc:
        raise IngestError(path.name, f"unreadable video: {exc}") from exc
    if not frames:
        raise IngestError(path.name, "the video stream holds no decodable frames")
    # A non-square sample aspect ratio means pixels are `aspect` times wider than tall.
    spacing = (1.0, float(aspect)) if aspect else None
    return [RawSequence(np.stack(frames).astype(np.float32), pixel_spacing=spacing)]
