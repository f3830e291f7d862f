"""Decoding and checking uploaded condition files before anything is stored.

Image priors: PNG, JPEG, DICOM, NIfTI (a slice), NPY/NPZ → uint8 (H, W).
Reference clips: MP4/AVI, multi-frame DICOM, NIfTI volume (slices as frames), NPZ `frames` → uint8 (F, H, W).
Every check runs on headers first, so oversized or lying files are refused before they are decoded.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image

from store.models import AssetKind


class UploadRejected(ValueError):
    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_pixels: int
    max_frames: int
    max_voxels: int


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
    if (
        len(data) >= 4
        and int.from_bytes(data[:4], "little") in (348, 540)
        or int.from_bytes(data[:4], "big") in (348, 540)
    ):
        return "application/x-nifti"
    raise UploadRejected("file: unrecognised format (expected PNG, JPEG, DICOM, NIfTI, NPY/NPZ, MP4 or AVI)")


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Grayscale uint8; other intensities are min-max scaled over the whole array (no window known here)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "biuf":
        raise UploadRejected(f"file: array dtype {array.dtype} is not numeric")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise UploadRejected("file: array holds NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.round((values - low) * scale).astype(np.uint8)


def _luminance(frames: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114])
    return (frames[..., :3].astype(np.float64) @ weights).round().clip(0, 255).astype(np.uint8)


def _check_frames(count: int, height: int, width: int, limits: UploadLimits) -> None:
    if count > limits.max_frames:
        raise UploadRejected(f"file: {count} frames exceed the limit of {limits.max_frames}", 413)
    if height * width > limits.max_pixels:
        raise UploadRejected(
            f"file: {height}×{width} pixels per frame exceed the limit of {limits.max_pixels}", 413
        )


def _check_values(shape: tuple[int, ...], limits: UploadLimits) -> None:
    values = int(np.prod(shape, dtype=np.int64))
    if values > limits.max_voxels:
        raise UploadRejected(
            f"file: array of shape {tuple(shape)} exceeds the limit of {limits.max_voxels} values", 413
        )


def _decode_image(data: bytes, limits: UploadLimits) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise UploadRejected(
                        f"file: image of {width}×{height} pixels exceeds the limit of {limits.max_pixels} "
                        "(decompression bomb?)",
                        413,
                    )
                image.load()
                return np.asarray(image.convert("L"))
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRejected(f"file: decompression bomb refused ({exc})", 413) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"file: truncated or corrupt image ({exc})") from exc


def _decode_dicom(data: bytes, limits: UploadLimits) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        item_bytes = max(int(dataset.BitsAllocated) // 8, 1)
        transfer_syntax = dataset.file_meta.TransferSyntaxUID
    except (InvalidDicomError, AttributeError, EOFError, ValueError, OSError) as exc:
        raise UploadRejected(f"file: unreadable DICOM header ({exc})") from exc
    _check_frames(frames, rows, columns, limits)
    _check_values((frames, rows, columns, samples), limits)
    if "PixelData" not in dataset:
        raise UploadRejected("file: DICOM has no pixel data")
    expected = frames * rows * columns * samples * item_bytes
    if not transfer_syntax.is_compressed and len(dataset.PixelData) < expected:
        raise UploadRejected(
            f"file: truncated DICOM: pixel data holds {len(dataset.PixelData)} bytes, "
            f"the header needs {expected}"
        )
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom's decoders raise many types for corrupt data
        raise UploadRejected(f"file: truncated or undecodable DICOM pixel data ({exc})") from exc
    if samples > 1:
        pixels = _luminance(pixels)
    return to_uint8(pixels.reshape(frames, rows, columns))


def _gunzip(data: bytes, limit: int) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        try:
            raw = stream.read(limit + 1)
        except (OSError, EOFError) as exc:
            raise UploadRejected(f"file: corrupt gzip data ({exc})") from exc
    if len(raw) > limit:
        raise UploadRejected(f"file: gzip data unpacks to more than {limit} bytes", 413)
    return raw


def _decode_nifti(data: bytes, limits: UploadLimits) -> np.ndarray:
    """NIfTI as frames (F, H, W): 2D → one frame, 3D → slices along the last axis, 4D → time at mid slice."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    image_class = nib.Nifti2Image if int.from_bytes(data[:4], "little") == 540 else nib.Nifti1Image
    try:
        image = image_class.from_bytes(data)
    except (HeaderDataError, ImageFileError, ValueError, EOFError) as exc:
        raise UploadRejected(f"file: unreadable NIfTI header ({exc})") from exc
    header = image.header
    shape = tuple(int(n) for n in image.shape)
    if not 2 <= len(shape) <= 4:
        raise UploadRejected(f"file: NIfTI with {len(shape)} dimensions; expected 2 to 4")
    _check_values(shape, limits)
    needed = (
        int(header["vox_offset"]) + int(np.prod(shape, dtype=np.int64)) * header.get_data_dtype().itemsize
    )
    if needed > len(data):
        raise UploadRejected(
            f"file: NIfTI header declares shape {shape} needing {needed} bytes, "
            f"but the file holds {len(data)}"
        )
    volume = np.asanyarray(image.dataobj)
    if volume.ndim == 2:
        frames = volume.T[None]
    elif volume.ndim == 3:
        frames = volume.transpose(2, 1, 0)
    else:
        frames = volume[:, :, volume.shape[2] // 2, :].transpose(2, 1, 0)
    _check_frames(frames.shape[0], frames.shape[1], frames.shape[2], limits)
    return to_uint8(np.ascontiguousarray(frames))


def _npy_header(stream: io.BytesIO) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(stream)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"NPY format version {version} is not supported")
    shape, _, dtype = readers[version](stream)
    return shape, dtype


def _load_npy(raw: bytes, limits: UploadLimits) -> np.ndarray:
    try:
        shape, dtype = _npy_header(io.BytesIO(raw))
    except ValueError as exc:
        raise UploadRejected(f"file: corrupt NPY header ({exc})") from exc
    if dtype.hasobject:
        raise UploadRejected("file: pickled NumPy data (object arrays) is not accepted")
    _check_values(shape, limits)
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except ValueError as exc:
        raise UploadRejected(f"file: unreadable NPY data ({exc})") from exc


def _load_npz(data: bytes, limits: UploadLimits) -> dict[str, np.ndarray]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".npy")]
            if sum(m.file_size for m in members) > limits.max_bytes * 64:
                raise UploadRejected("file: NPZ members unpack to too many bytes", 413)
            return {m.filename[: -len(".npy")]: _load_npy(archive.read(m), limits) for m in members}
    except zipfile.BadZipFile as exc:
        raise UploadRejected(f"file: corrupt NPZ archive ({exc})") from exc


def _array_frames(array: np.ndarray, limits: UploadLimits) -> np.ndarray:
    if array.ndim == 4 and array.shape[-1] in (3, 4):
        array = _luminance(to_uint8(array))
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise UploadRejected(f"file: array of shape {array.shape}; expected (H, W) or (F, H, W)")
    _check_frames(array.shape[0], array.shape[1], array.shape[2], limits)
    return to_uint8(array)


def _decode_video(data: bytes, limits: UploadLimits) -> np.ndarray:
    import av

    frames: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise UploadRejected("file: the container has no video stream")
            stream = container.streams.video[0]
            _check_frames(0, stream.codec_context.height, stream.codec_context.width, limits)
            for frame in container.decode(stream):
                if len(frames) == limits.max_frames:
                    raise UploadRejected(f"file: more than {limits.max_frames} frames", 413)
                frames.append(frame.to_ndarray(format="gray"))
    except UploadRejected:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise UploadRejected(f"file: undecodable video ({exc})") from exc
    if not frames:
        raise UploadRejected("file: the video has no decodable frames")
    return np.stack(frames)


def _decode_frames(data: bytes, media_type: str, limits: UploadLimits) -> np.ndarray:
    if media_type in ("image/png", "image/jpeg"):
        return _decode_image(data, limits)[None]
    if media_type == "application/dicom":
        return _decode_dicom(data, limits)
    if media_type == "application/x-nifti":
        return _decode_nifti(data, limits)
    if media_type == "application/x-npy":
        return _array_frames(_load_npy(data, limits), limits)
    if media_type == "application/x-npz":
        arrays = _load_npz(data, limits)
        for name in ("frames", "image"):
            if name in arrays:
                return _array_frames(arrays[name], limits)
        raise UploadRejected(f"file: NPZ has no 'frames' or 'image' array (found {sorted(arrays)})")
    return _decode_video(data, limits)


def decode_upload(data: bytes, kind: AssetKind, limits: UploadLimits) -> DecodedUpload:
    """Check and decode an upload: image prior → uint8 (H, W) (the first frame or slice of a sequence, as the
    paper's image prior is a sequence's first frame); reference clip → uint8 frames (F, H, W)."""
    if not data:
        raise UploadRejected("file: empty upload")
    if len(data) > limits.max_bytes:
        raise UploadRejected(f"file: upload exceeds the limit of {limits.max_bytes} bytes", 413)
    media_type = sniff_media_type(data)
    if media_type == "application/gzip":
        data = _gunzip(data, limits.max_bytes * 16)
        if sniff_media_type(data) != "application/x-nifti":
            raise UploadRejected("file: gzip upload is not a NIfTI file")
        media_type = "application/x-nifti"
    if kind == AssetKind.reference_clip and media_type in ("image/png", "image/jpeg"):
        raise UploadRejected(
            "file: a reference clip must be a sequence (MP4, AVI, DICOM, NIfTI or NPZ), not an image"
        )
    frames = _decode_frames(data, media_type, limits)
    if kind == AssetKind.image_prior:
        return DecodedUpload(media_type, frames[0])
    if frames.shape[0] < 2:
        raise UploadRejected(f"file: a reference clip needs at least 2 frames, got {frames.shape[0]}")
    return DecodedUpload(media_type, frames)
