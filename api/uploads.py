"""Uploaded condition files: what format the bytes are, what an asset kind accepts, and the HTTP status of
a refusal. Decoding, with every limit checked on headers first, is ingest's (`ingest.readers.streamed`), the
same reader layer `ctrlgenaug data build` uses, so an upload and a data build see the same frames.

Image priors: PNG, JPEG, DICOM, NIfTI (a slice), NPY/NPZ → uint8 (H, W).
Reference clips: MP4/AVI, multi-frame DICOM, NIfTI volume (slices as frames), NPZ `frames` → uint8 (F, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.readers.budget import MediaRejected
from ingest.readers.budget import ReadLimits as UploadLimits
from ingest.readers.streamed import is_nifti_magic, read_bytes
from store.models import AssetKind


class UploadRejected(ValueError):
    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class DecodedUpload:
    media_type: str
    array: np.ndarray


def sniff_media_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "application/dicom"
    if data.startswith(b"\x93NUMPY"):
        return "application/x-npy"
    if data.startswith(b"PK\x03\x04"):
        return "application/x-npz"
    if data.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "video/mp4"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "video/x-msvideo"
    if len(data) >= 4 and is_nifti_magic(data):
        return "application/x-nifti"
    raise UploadRejected("file: unrecognised format (expected PNG, JPEG, DICOM, NIfTI, NPY/NPZ, MP4 or AVI)")


def decode_upload(data: bytes, kind: AssetKind, limits: UploadLimits) -> DecodedUpload:
    """Check and decode an upload, keeping what a model can use: image prior → uint8 (H, W) (the first frame
    or slice of a sequence, as the paper's image prior is a sequence's first frame); reference clip → uint8
    frames (F, H, W), the first `keep_frames`; every frame shrunk into `keep_height`×`keep_width` as it
    decodes. A refusal is an `UploadRejected`: 413 when a limit refused the bytes, else 422."""
    if not data:
        raise UploadRejected("file: empty upload")
    media_type = sniff_media_type(data)
    if kind == AssetKind.reference_clip and media_type in ("image/png", "image/jpeg"):
        raise UploadRejected(
            "file: a reference clip must be a sequence (MP4, AVI, DICOM, NIfTI or NPZ), not an image"
        )
    keep_frames = 1 if kind == AssetKind.image_prior else limits.keep_frames
    try:
        frames = read_bytes(data, media_type, keep_frames, limits)
    except MediaRejected as exc:
        raise UploadRejected(str(exc), 413 if exc.too_large else 422) from exc
    media_type = "application/x-nifti" if media_type == "application/gzip" else media_type
    if kind == AssetKind.image_prior:
        return DecodedUpload(media_type, frames[0])
    if frames.shape[0] < 2:
        raise UploadRejected(f"file: a reference clip needs at least 2 frames, got {frames.shape[0]}")
    return DecodedUpload(media_type, frames)
