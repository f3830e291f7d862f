"""What a reviewer sees of a clip: its frames, the image prior and the source real clip, as PNG strips
(frames side by side, left to right) rendered from the stored arrays."""

from __future__ import annotations

import enum
import hashlib
import io

import numpy as np
from PIL import Image

from store.models import Clip
from store.objects import ObjectStore


class StripKind(str, enum.Enum):
    frames = "frames"
    image_prior = "image_prior"
    source = "source"


def strip_png(frames: np.ndarray) -> bytes:
    """uint8 frames `(F, H, W)` (or one `(H, W)` image) side by side as one grayscale PNG."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (2, 3):
        raise ValueError(f"frames must be uint8 (F, H, W) or (H, W), got {frames.dtype} {frames.shape}")
    row = frames if frames.ndim == 2 else np.concatenate(list(frames), axis=1)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(row), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _npz_frames(data: bytes) -> np.ndarray:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return npz["frames"]


def clip_strip(store: ObjectStore, clip: Clip, kind: StripKind) -> bytes | None:
    """The PNG strip of `kind` for the clip, or None when its bank has no such condition (no image prior; no
    source real clip: only banks drawn from a dataset's training clip, `banks_from`, have one)."""
    bank = clip.bank
    if kind is StripKind.frames:
        data = store.get(clip.object_key)
        if hashlib.sha256(data).hexdigest() != clip.sha256:
            raise ValueError(f"clip {clip.id}: stored bytes do not match its recorded SHA-256")
        return strip_png(_npz_frames(data))
    if kind is StripKind.image_prior:
        if bank.image_prior_asset is None:
            return None
        prior = np.load(io.BytesIO(store.get(bank.image_prior_asset.array_object_key)), allow_pickle=False)
        return strip_png(prior)
    if bank.source_clip_id is None or bank.motion_asset is None:
        return None
    # a banks_from bank's reference clip is the dataset's training clip file itself
    return strip_png(_npz_frames(store.get(bank.motion_asset.object_key)))
