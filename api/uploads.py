"""Decoding and checking uploaded condition files before anything is stored.

Image priors: PNG, JPEG, DICOM, NIfTI (a slice), NPY/NPZ → uint8 (H, W).
Reference clips: MP4/AVI, multi-frame DICOM, NIfTI volume (slices as frames), NPZ `frames` → uint8 (F, H, W).
Every check runs on headers first, so oversized or lying files are refused before they are decoded; then
frames decode one at a time (NPZ members and .nii.gz inflate only as far as the kept frames) and only what a
model can use is kept (`UploadLimits.keep_*`), within a wall-clock budget.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
from PIL import Image

from api.upload_frames import Deadline, FrameCollector, UploadRejected, luminance
from store.models import AssetKind

CHUNK_BYTES = 1 << 20
Readable = IO[bytes] | gzip.GzipFile
MAX_ITEM_BYTES = 16  # the widest numeric NumPy type (float128)
NPY_MAX_HEADER_BYTES = 65_536 + 10  # NPY format 2.0: magic, version, length, header


@dataclass(frozen=True)
class UploadLimits:
    """Header limits (refused with 413 before decoding) and what is kept of a decoded upload: the first
    `keep_frames` frames, each shrunk into `keep_height`×`keep_width`, within `max_seconds`."""

    max_bytes: int
    max_pixels: int
    max_frames: int
    max_voxels: int
    keep_frames: int
    keep_height: int
    keep_width: int
    max_seconds: float


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


def _read_exactly(stream: Readable, size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise UploadRejected(f"file: truncated {what}: {len(data)} of {size} bytes")
    return data


def _skip(stream: Readable, size: int, what: str, deadline: Deadline) -> None:
    """Read past `size` bytes in bounded pieces (a gzip stream inflates them, nothing is kept)."""
    while size > 0:
        deadline.check()
        size -= len(_read_exactly(stream, min(size, CHUNK_BYTES), what))


def _decode_image(data: bytes, collector: FrameCollector, limits: UploadLimits) -> None:
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
                image.draft("L", (limits.keep_width, limits.keep_height))  # JPEG: decode at a reduced scale
                collector.add(np.asarray(image.convert("L")))
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadRejected(f"file: decompression bomb refused ({exc})", 413) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"file: truncated or corrupt image ({exc})") from exc


def _decode_dicom(data: bytes, collector: FrameCollector, limits: UploadLimits) -> None:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import iter_pixels

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
        for pixels in iter_pixels(dataset, indices=range(min(frames, collector.keep_frames))):
            collector.add(luminance(pixels) if samples > 1 else pixels)
    except UploadRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom's decoders raise many types for corrupt data
        raise UploadRejected(f"file: truncated or undecodable DICOM pixel data ({exc})") from exc


def _nifti_header(stream: Readable) -> Any:
    import nibabel as nib
    from nibabel.spatialimages import HeaderDataError

    magic = _read_exactly(stream, 4, "NIfTI header")
    header_class = nib.Nifti2Header if int.from_bytes(magic, "little") == 540 else nib.Nifti1Header
    size = header_class.sizeof_hdr
    block = magic + _read_exactly(stream, size - 4, "NIfTI header")
    try:
        return header_class(block, check=True)
    except (HeaderDataError, ValueError) as exc:
        raise UploadRejected(f"file: unreadable NIfTI header ({exc})") from exc


def _decode_nifti(
    stream: Readable, size: int | None, collector: FrameCollector, limits: UploadLimits
) -> None:
    """NIfTI as frames (F, H, W): 2D → one frame, 3D → slices along the last axis, 4D → time at mid slice.

    Read from `stream` (the file, or its gzip stream inflating as it is read) up to the last kept frame:
    the voxels are stored x fastest, so each z slice is one contiguous block. `size` is the file's size
    when known (uncompressed), to refuse a header that declares more data than the file holds.
    """
    header = _nifti_header(stream)
    try:
        shape = tuple(int(n) for n in header.get_data_shape())
        dtype = header.get_data_dtype()
        offset = int(header.get_data_offset())
        slope, intercept = header.get_slope_inter()
    except Exception as exc:  # noqa: BLE001 - nibabel reports broken headers with many types
        raise UploadRejected(f"file: unreadable NIfTI header ({exc})") from exc
    if not 2 <= len(shape) <= 4:
        raise UploadRejected(f"file: NIfTI with {len(shape)} dimensions; expected 2 to 4")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise UploadRejected(f"file: NIfTI data type {dtype} is not a plain number type")
    _check_values(shape, limits)
    width, height = shape[0], shape[1]
    count = 1 if len(shape) == 2 else shape[-1]
    _check_frames(count, height, width, limits)
    frame_bytes = width * height * dtype.itemsize
    needed = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size is not None and needed > size:
        raise UploadRejected(
            f"file: NIfTI header declares shape {shape} needing {needed} bytes, but the file holds {size}"
        )
    slices = shape[2] if len(shape) == 4 else 1
    skip_before, skip_after = (slices // 2, slices - slices // 2 - 1) if len(shape) == 4 else (0, 0)
    _skip(stream, offset - header.sizeof_hdr, "NIfTI data", collector.deadline)
    for index in range(min(count, collector.keep_frames)):
        _skip(stream, skip_before * frame_bytes, "NIfTI data", collector.deadline)
        raw = _read_exactly(stream, frame_bytes, "NIfTI data")
        pixels = np.frombuffer(raw, dtype=dtype).reshape(height, width)
        collector.add(pixels if slope is None else pixels * np.float32(slope) + np.float32(intercept or 0))
        if index + 1 < count:
            _skip(stream, skip_after * frame_bytes, "NIfTI data", collector.deadline)


def _npy_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"NPY format version {version} is not supported")
        shape, fortran_order, dtype = readers[version](stream)
    except ValueError as exc:
        raise UploadRejected(f"file: corrupt NPY header ({exc})") from exc
    if dtype.hasobject:
        raise UploadRejected("file: pickled NumPy data (object arrays) is not accepted")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise UploadRejected(f"file: array dtype {dtype} is not numeric")
    return shape, fortran_order, dtype


def _decode_npy(stream: IO[bytes], collector: FrameCollector, limits: UploadLimits) -> None:
    """An NPY array (H, W), (F, H, W) or (F, H, W, 3|4), read frame by frame (C order) up to the last kept."""
    shape, fortran_order, dtype = _npy_header(stream)
    _check_values(shape, limits)
    channels = shape[3] if len(shape) == 4 and shape[3] in (3, 4) else 0
    if len(shape) == 2:
        shape = (1, *shape)
    elif len(shape) != 3 and not channels:
        raise UploadRejected(f"file: array of shape {shape}; expected (H, W) or (F, H, W)")
    count, height, width = shape[:3]
    _check_frames(count, height, width, limits)
    frame_values = height * width * max(channels, 1)
    if fortran_order:
        whole = count * frame_values * dtype.itemsize
        if whole > limits.max_bytes:
            raise UploadRejected(
                f"file: a Fortran-ordered array of {whole} bytes cannot be read frame by frame "
                f"(limit {limits.max_bytes}); save it in C order",
                413,
            )
        raw = _read_exactly(stream, whole, "NPY data")
        frames = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F")
        for frame in frames[: collector.keep_frames]:
            collector.add(luminance(frame) if channels else frame)
        return
    for _ in range(min(count, collector.keep_frames)):
        raw = _read_exactly(stream, frame_values * dtype.itemsize, "NPY data")
        frame = np.frombuffer(raw, dtype=dtype).reshape(
            (height, width, channels) if channels else (height, width)
        )
        collector.add(luminance(frame) if channels else frame)


def _decode_npz(data: bytes, collector: FrameCollector, limits: UploadLimits) -> None:
    """The `frames` (else `image`) member: its declared size checked from the zip header, then inflated only
    as far as the kept frames."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {
                m.filename[: -len(".npy")]: m for m in archive.infolist() if m.filename.endswith(".npy")
            }
            name = next((n for n in ("frames", "image") if n in members), None)
            if name is None:
                raise UploadRejected(f"file: NPZ has no 'frames' or 'image' array (found {sorted(members)})")
            member = members[name]
            largest = limits.max_voxels * MAX_ITEM_BYTES + NPY_MAX_HEADER_BYTES
            if member.file_size > largest:
                raise UploadRejected(
                    f"file: NPZ member {member.filename} unpacks to {member.file_size} bytes, more than the "
                    f"{largest} of the largest array allowed",
                    413,
                )
            # zipfile inflates a member no further than the size its header declares
            with archive.open(member) as stream:
                _decode_npy(stream, collector, limits)
    except zipfile.BadZipFile as exc:
        raise UploadRejected(f"file: corrupt NPZ archive ({exc})") from exc
    except (zlib.error, EOFError) as exc:
        raise UploadRejected(f"file: corrupt NPZ member ({exc})") from exc


def _decode_video(data: bytes, collector: FrameCollector, limits: UploadLimits) -> None:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise UploadRejected("file: the container has no video stream")
            stream = container.streams.video[0]
            _check_frames(0, stream.codec_context.height, stream.codec_context.width, limits)
            for index, frame in enumerate(container.decode(stream)):
                if index == limits.max_frames:
                    raise UploadRejected(f"file: more than {limits.max_frames} frames", 413)
                collector.add(frame.to_ndarray(format="gray"))
                if collector.full:
                    break
    except UploadRejected:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise UploadRejected(f"file: undecodable video ({exc})") from exc


def _gzip_stream(data: bytes) -> gzip.GzipFile:
    stream = gzip.GzipFile(fileobj=io.BytesIO(data))
    try:
        magic = stream.peek(4)[:4]
    except (OSError, EOFError, zlib.error) as exc:
        raise UploadRejected(f"file: corrupt gzip data ({exc})") from exc
    if int.from_bytes(magic, "little") not in (348, 540) and int.from_bytes(magic, "big") not in (348, 540):
        raise UploadRejected("file: gzip upload is not a NIfTI file")
    return stream


def _decode_frames(data: bytes, media_type: str, collector: FrameCollector, limits: UploadLimits) -> None:
    if media_type in ("image/png", "image/jpeg"):
        _decode_image(data, collector, limits)
    elif media_type == "application/dicom":
        _decode_dicom(data, collector, limits)
    elif media_type == "application/x-nifti":
        _decode_nifti(io.BytesIO(data), len(data), collector, limits)
    elif media_type == "application/gzip":
        with _gzip_stream(data) as stream:
            try:
                _decode_nifti(stream, None, collector, limits)
            except (OSError, EOFError, zlib.error) as exc:
                raise UploadRejected(f"file: corrupt gzip data ({exc})") from exc
    elif media_type == "application/x-npy":
        _decode_npy(io.BytesIO(data), collector, limits)
    elif media_type == "application/x-npz":
        _decode_npz(data, collector, limits)
    else:
        _decode_video(data, collector, limits)


def decode_upload(data: bytes, kind: AssetKind, limits: UploadLimits) -> DecodedUpload:
    """Check and decode an upload, keeping what a model can use: image prior → uint8 (H, W) (the first frame
    or slice of a sequence, as the paper's image prior is a sequence's first frame); reference clip → uint8
    frames (F, H, W), the first `keep_frames`; every frame shrunk into `keep_height`×`keep_width` as it
    decodes."""
    if not data:
        raise UploadRejected("file: empty upload")
    if len(data) > limits.max_bytes:
        raise UploadRejected(f"file: upload exceeds the limit of {limits.max_bytes} bytes", 413)
    media_type = sniff_media_type(data)
    if kind == AssetKind.reference_clip and media_type in ("image/png", "image/jpeg"):
        raise UploadRejected(
            "file: a reference clip must be a sequence (MP4, AVI, DICOM, NIfTI or NPZ), not an image"
        )
    keep_frames = 1 if kind == AssetKind.image_prior else limits.keep_frames
    collector = FrameCollector(
        keep_frames, limits.keep_height, limits.keep_width, Deadline(limits.max_seconds)
    )
    _decode_frames(data, media_type, collector, limits)
    frames = collector.frames()
    media_type = "application/x-nifti" if media_type == "application/gzip" else media_type
    if kind == AssetKind.image_prior:
        return DecodedUpload(media_type, frames[0])
    if frames.shape[0] < 2:
        raise UploadRejected(f"file: a reference clip needs at least 2 frames, got {frames.shape[0]}")
    return DecodedUpload(media_type, frames)
