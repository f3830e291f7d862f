"""A stored clip as NIfTI-1 (`.nii.gz`): the frames as the last axis, the source clip's SHA-256 in the header
so a verifier can trace the converted file back to the clip the service recorded."""

from __future__ import annotations

import gzip
import io

import numpy as np

NIFTI_EXTENSION = "nii.gz"
_DESCRIP_PREFIX = "sha256:"


def clip_nifti_bytes(npz_bytes: bytes, sha256: str) -> bytes:
    """The clip's uint8 frames (F, H, W) as a (H, W, F) NIfTI volume, gzipped byte-reproducibly.

    The voxel size is 1 with unknown units: a data build resamples its sources to the model's square frame
    and records no physical spacing, so there is none to carry over (docs/exports.md).

    Args:
        npz_bytes: the stored clip (`frames` uint8 (F, H, W)).
        sha256: the stored clip's SHA-256, written to the header's `descrip` as `sha256:<hex>`.

    Returns:
        The `.nii.gz` bytes (gzip mtime 0: the same clip always gives the same bytes).
    """
    import nibabel as nib

    with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
        frames = npz["frames"]
    image = nib.Nifti1Image(np.ascontiguousarray(frames.transpose(1, 2, 0)), np.eye(4))
    image.header["descrip"] = f"{_DESCRIP_PREFIX}{sha256}".encode()
    return gzip.compress(image.to_bytes(), mtime=0)


def nifti_source_sha256(nifti_gz_bytes: bytes) -> str | None:
    """The SHA-256 of the clip a `.nii.gz` was converted from (None: not written by `clip_nifti_bytes`)."""
    import nibabel as nib

    try:
        header = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_gz_bytes)).header
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError):
        return None
    descrip = bytes(header["descrip"]).rstrip(b"\x00").decode(errors="replace")
    return descrip.removeprefix(_DESCRIP_PREFIX) if descrip.startswith(_DESCRIP_PREFIX) else None
