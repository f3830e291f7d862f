"""Untrusted bytes (an upload) → uint8 frames, decoded the way `read_source` decodes files, within limits.

Image: PNG, JPEG. Sequences: MP4/AVI, DICOM, NIfTI (`.nii`, `.nii.gz`), NPY and NPZ `frames` (or `image`).
Every limit is checked on headers first, so oversized or lying bytes are refused before they are decoded;
then frames decode one at a time (NPZ members and gzip inflate only as far as the kept frames), keeping what
a model can use (`ReadLimits.keep_*`) within a wall-clock budget. Pickles are never loaded.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zipfile
import zlib
from typing import IO

import numpy as np
from PIL import Image

from ingest.errors import IngestError
from ingest.intensity import rgb_to_luminance
from ingest.readers.budget import (
    Deadline,
    MediaRejected,
    ReadLimits,
    check_frames,
    check_values,
    read_exactly,
)
from ingest.readers.collect import FrameCollector
from ingest.readers.dicom import colour_decoding, is_inverted, to_gray
from ingest.readers.nifti_stream import read_nifti_stream

MAX_ITEM_BYTES = 16  # the widest numeric NumPy type (float128)
NPY_MAX_HEADER_BYTES = 65_536 + 10  # NPY format 2.0: magic, version, length, header
NIFTI_MAGIC = (348, 540)  # sizeof_hdr of NIfTI-1 and NIfTI-2
MEDIA_TYPES = (
    "image/png",
    "image/jpeg",
    "application/dicom",
    "application/x-nifti",
    "application/gzip",
    "application/x-npy",
    "application/x-npz",
    "video/mp4",
    "video/x-msvideo",
)


def is_nifti_magic(first: bytes) -> bool:
    return (
        int.from_bytes(first[:4], "little") in NIFTI_MAGIC or int.from_bytes(first[:4], "big") in NIFTI_MAGIC
    )


def _read_image(data: bytes, collector: FrameCollector, limits: ReadLimits) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > limits.max_pixels:
                    raise MediaRejected(
                        f"image of {width}×{height} pixels exceeds the limit of {limits.max_pixels} "
                        "(decompression bomb?)",
                        too_large=True,
                    )
                image.draft("L", (limits.keep_width, limits.keep_height))  # JPEG: decode at a reduced scale
                collector.add(np.asarray(image.convert("L")))
    except MediaRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaRejected(f"decompression bomb refused ({exc})", too_large=True) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise MediaRejected(f"truncated or corrupt image ({exc})") from exc


def _read_dicom(data: bytes, collector: FrameCollector, limits: ReadLimits) -> None:
    """Frames as `read_dicom_file` reduces them to gray; MONOCHROME1 negated so that it scales as shown."""
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
        raise MediaRejected(f"unreadable DICOM header ({exc})") from exc
    check_frames(frames, rows, columns, limits)
    check_values((frames, rows, columns, samples), limits)
    if "PixelData" not in dataset:
        raise MediaRejected("DICOM has no pixel data")
    expected = frames * rows * columns * samples * item_bytes
    if not transfer_syntax.is_compressed and len(dataset.PixelData) < expected:
        raise MediaRejected(
            f"truncated DICOM: pixel data holds {len(dataset.PixelData)} bytes, the header needs {expected}"
        )
    try:
        samples, y_plane = colour_decoding(dataset, "file")
    except IngestError as exc:
        raise MediaRejected(exc.reason) from exc
    inverted = is_inverted(dataset)
    try:
        indices = range(min(frames, collector.keep_frames))
        for pixels in iter_pixels(dataset, indices=indices, as_rgb=samples == 3 and not y_plane):
            gray = to_gray(pixels, samples, y_plane)
            collector.add(-gray.astype(np.float32) if inverted else gray)
    except MediaRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom's decoders raise many types for corrupt data
        raise MediaRejected(f"truncated or undecodable DICOM pixel data ({exc})") from exc


def _npy_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"NPY format version {version} is not supported")
        shape, fortran_order, dtype = readers[version](stream)
    except ValueError as exc:
        raise MediaRejected(f"corrupt NPY header ({exc})") from exc
    if dtype.hasobject:
        raise MediaRejected("pickled NumPy data (object arrays) is not accepted")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise MediaRejected(f"array dtype {dtype} is not numeric")
    return shape, fortran_order, dtype


def _read_npy(stream: IO[bytes], collector: FrameCollector, limits: ReadLimits) -> None:
    """An NPY array (H, W), (F, H, W) or (F, H, W, 3|4), read frame by frame (C order) up to the last kept."""
    shape, fortran_order, dtype = _npy_header(stream)
    check_values(shape, limits)
    channels = shape[3] if len(shape) == 4 and shape[3] in (3, 4) else 0
    if len(shape) == 2:
        shape = (1, *shape)
    elif len(shape) != 3 and not channels:
        raise MediaRejected(f"array of shape {shape}; expected (H, W) or (F, H, W)")
    count, height, width = shape[:3]
    check_frames(count, height, width, limits)
    frame_values = height * width * max(channels, 1)
    if fortran_order:
        whole = count * frame_values * dtype.itemsize
        if whole > limits.max_bytes:
            raise MediaRejected(
                f"a Fortran-ordered array of {whole} bytes cannot be read frame by frame "
                f"(limit {limits.max_bytes}); save it in C order",
                too_large=True,
            )
        raw = read_exactly(stream, whole, "NPY data")
        frames = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F")
        for frame in frames[: collector.keep_frames]:
            collector.add(rgb_to_luminance(frame) if channels else frame)
        return
    for _ in range(min(count, collector.keep_frames)):
        raw = read_exactly(stream, frame_values * dtype.itemsize, "NPY data")
        frame = np.frombuffer(raw, dtype=dtype).reshape(
            (height, width, channels) if channels else (height, width)
        )
        collector.add(rgb_to_luminance(frame) if channels else frame)


def _read_npz(data: bytes, collector: FrameCollector, limits: ReadLimits) -> None:
    """The `frames` (else `image`) member: its declared size checked from the zip header, then inflated only
    as far as the kept frames."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {
                m.filename[: -len(".npy")]: m for m in archive.infolist() if m.filename.endswith(".npy")
            }
            name = next((n for n in ("frames", "image") if n in members), None)
            if name is None:
                raise MediaRejected(f"NPZ has no 'frames' or 'image' array (found {sorted(members)})")
            member = members[name]
            largest = limits.max_voxels * MAX_ITEM_BYTES + NPY_MAX_HEADER_BYTES
            if member.file_size > largest:
                raise MediaRejected(
                    f"NPZ member {member.filename} unpacks to {member.file_size} bytes, more than the "
                    f"{largest} of the largest array allowed",
                    too_large=True,
                )
            # zipfile inflates a member no further than the size its header declares
            with archive.open(member) as stream:
                _read_npy(stream, collector, limits)
    except zipfile.BadZipFile as exc:
        raise MediaRejected(f"corrupt NPZ archive ({exc})") from exc
    except (zlib.error, EOFError) as exc:
        raise MediaRejected(f"corrupt NPZ member ({exc})") from exc


def _read_video(data: bytes, collector: FrameCollector, limits: ReadLimits) -> None:
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise MediaRejected("the container has no video stream")
            stream = container.streams.video[0]
            check_frames(0, stream.codec_context.height, stream.codec_context.width, limits)
            for index, frame in enumerate(container.decode(stream)):
                if index == limits.max_frames:
                    raise MediaRejected(f"more than {limits.max_frames} frames", too_large=True)
                collector.add(frame.to_ndarray(format="gray"))
                if collector.full:
                    break
    except MediaRejected:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise MediaRejected(f"undecodable video ({exc})") from exc


def _read_nifti_gz(data: bytes, collector: FrameCollector, limits: ReadLimits) -> None:
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        try:
            if not is_nifti_magic(stream.peek(4)[:4]):
                raise MediaRejected("gzip upload is not a NIfTI file")
            read_nifti_stream(stream, None, collector, limits)
        except (OSError, EOFError, zlib.error) as exc:
            raise MediaRejected(f"corrupt gzip data ({exc})") from exc


def read_bytes(data: bytes, media_type: str, keep_frames: int, limits: ReadLimits) -> np.ndarray:
    """Check and decode `data` of a sniffed `media_type` (one of `MEDIA_TYPES`): the first `keep_frames`
    (at most `limits.keep_frames`) frames as uint8 (F, H, W), each shrunk into `keep_height`×`keep_width`.

    Raises `MediaRejected` (`too_large` when a limit refused the bytes).
    """
    if len(data) > limits.max_bytes:
        raise MediaRejected(f"upload exceeds the limit of {limits.max_bytes} bytes", too_large=True)
    collector = FrameCollector(
        keep_frames, limits.keep_height, limits.keep_width, Deadline(limits.max_seconds)
    )
    if media_type in ("image/png", "image/jpeg"):
        _read_image(data, collector, limits)
    elif media_type == "application/dicom":
        _read_dicom(data, collector, limits)
    elif media_type == "application/x-nifti":
        read_nifti_stream(io.BytesIO(data), len(data), collector, limits)
    elif media_type == "application/gzip":
        _read_nifti_gz(data, collector, limits)
    elif media_type == "application/x-npy":
        _read_npy(io.BytesIO(data), collector, limits)
    elif media_type == "application/x-npz":
        _read_npz(data, collector, limits)
    elif media_type in ("video/mp4", "video/x-msvideo"):
        _read_video(data, collector, limits)
    else:
        raise ValueError(f"media_type must be one of {MEDIA_TYPES}, got {media_type!r}")
    return collector.frames()
