"""The bytes of a stored clip: a byte-reproducible `.npz` (uint8 frames + metadata) and a GIF preview."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

import numpy as np
from PIL import Image

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
PREVIEW_FRAME_MS = 125


def clip_npz_bytes(frames: np.ndarray, metadata: Mapping[str, int | str]) -> bytes:
    """`frames` uint8 (F, H, W) plus one 0-d array per metadata entry.

    Written by hand because `np.savez_compressed` stamps the current time into each zip entry, and a
    re-run of a clip must give the same bytes (and SHA-256).
    """
    if frames.dtype != np.uint8 or frames.ndim != 3:
        raise ValueError(f"frames must be uint8 (F, H, W), got {frames.dtype} {frames.shape}")
    arrays = {"frames": frames, **{name: np.asarray(value) for name, value in metadata.items()}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def preview_gif_bytes(frames: np.ndarray) -> bytes:
    """An animated, looping grayscale GIF of the clip."""
    images = [Image.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=PREVIEW_FRAME_MS, loop=0
    )
    return buffer.getvalue()


def read_clip_frames(data: bytes) -> np.ndarray:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return npz["frames"]
