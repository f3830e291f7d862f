#!/usr/bin/env python3
"""The hostile-inputs corpus, generated (nothing big is committed): decompression bombs, lying headers,
truncated and oversized DICOM/NIfTI/MP4, pickled and huge NPY, gzip/zip bombs.

Every case is small on the wire (well under the tests' 256 KiB upload limit unless it tests that limit) and
sized against these limits: 512×512 pixels, 64 frames, 64·512·512 values, 256 KiB uploads.
`python tests/data/hostile/make_corpus.py OUT_DIR` writes every case as a file (for manual `curl` runs).
"""

from __future__ import annotations

import gzip
import io
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UPLOAD_LIMIT = 256 * 1024


@dataclass(frozen=True)
class HostileCase:
    build: Callable[[], bytes]
    kind: str  # the asset kind it is posted as
    status: int  # the answer the API must give
    fragment: str  # words the error message must contain
    filename: str = "upload.bin"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_bomb(side: int = 20_000) -> bytes:
    """A valid 1-bit PNG of side×side zeros: ~50 KB that decode to side² pixels."""
    row = b"\x00" + bytes(side // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def png_lying_dimensions() -> bytes:
    """The header declares 65535×65535 8-bit pixels; the data is one compressed row."""
    header = struct.pack(">IIBBBBB", 65_535, 65_535, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\x00" + bytes(64))
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def png_image(side: int = 32, seed: int = 0) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_truncated() -> bytes:
    return png_image(64)[:300]


def _dicom_dataset():  # type: ignore[no-untyped-def]
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("CT_small.dcm"))


def _dicom_bytes(dataset) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_truncated() -> bytes:
    data = _dicom_bytes(_dicom_dataset())
    return data[: len(data) // 2]


def dicom_huge_dimensions() -> bytes:
    """Rows × Columns × frames declared as 65535 × 65535 × 10000 over 32 KB of pixel data."""
    dataset = _dicom_dataset()
    dataset.Rows = 65_535
    dataset.Columns = 65_535
    dataset.NumberOfFrames = 10_000
    return _dicom_bytes(dataset)


def dicom_oversized() -> bytes:
    """A real DICOM padded past the upload limit with a private tag."""
    dataset = _dicom_dataset()
    dataset.add_new(0x00091010, "OB", bytes(UPLOAD_LIMIT + 1024))
    return _dicom_bytes(dataset)


def _nifti(shape: tuple[int, ...], dtype: type = np.int16) -> bytes:
    import nibabel as nib

    return nib.Nifti1Image(np.zeros(shape, dtype=dtype), np.eye(4)).to_bytes()


def nifti_truncated() -> bytes:
    """The header declares 64×64×64 int16 voxels; the file holds those of 32×32×8."""
    import nibabel as nib

    image = nib.Nifti1Image(np.zeros((32, 32, 8), dtype=np.int16), np.eye(4))
    header = image.header.copy()
    header.set_data_shape((64, 64, 64))
    data = image.to_bytes()
    return header.binaryblock + data[len(header.binaryblock) :]


def nifti_huge_dimensions() -> bytes:
    """A 348-byte header declaring 32767³ float64 voxels (281 TB) and no data."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((32_767, 32_767, 32_767))
    header.set_data_dtype(np.float64)
    return header.binaryblock + b"\x00" * 4


def nifti_gzip_bomb() -> bytes:
    """A .nii.gz of 64 MB of zeros in ~64 KB."""
    return gzip.compress(_nifti((512, 512, 128), np.int16), compresslevel=9)


def nifti_oversized() -> bytes:
    """A valid NIfTI whose bytes exceed the upload limit."""
    return _nifti((128, 128, 16), np.int16)


def _mp4(frames: int, height: int, width: int, codec: str = "mpeg4") -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def mp4_clip(frames: int = 8, side: int = 32) -> bytes:
    return _mp4(frames, side, side)


def mp4_truncated() -> bytes:
    """The first half of an MP4 whose index (moov box) sits at the end."""
    data = mp4_clip(16, 64)
    return data[: len(data) // 2]


def mp4_huge_dimensions() -> bytes:
    """Two flat 1024×1024 frames: small on the wire, over the per-frame pixel limit."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 1024, 1024, "yuv420p"
        for _ in range(2):
            frame = av.VideoFrame.from_ndarray(np.zeros((1024, 1024, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def mp4_oversized() -> bytes:
    return mp4_clip() + bytes(UPLOAD_LIMIT)


def npy_pickled() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"exploit": "os.system('id')"}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def npy_huge_declared_shape() -> bytes:
    """An NPY header declaring (100000, 100000) uint8 followed by 16 bytes."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (100_000, 100_000)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + bytes(16)


def npz_bomb() -> bytes:
    """An NPZ whose `frames` member inflates from ~30 KB to 32 MB."""
    payload = io.BytesIO()
    np.save(payload, np.zeros((128, 512, 512), dtype=np.uint8))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("frames.npy", payload.getvalue())
    return buffer.getvalue()


def npz_lying_member_size() -> bytes:
    """A small NPZ whose central directory says its `frames` member unpacks to ~4 GB."""
    payload = io.BytesIO()
    np.save(payload, np.zeros((8, 32, 32), dtype=np.uint8))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("frames.npy", payload.getvalue())
    data = bytearray(buffer.getvalue())
    entry = data.rindex(b"PK\x01\x02")  # the member's central directory entry: uncompressed size at +24
    data[entry + 24 : entry + 28] = struct.pack("<I", 0xFFFF_FFF0)
    return bytes(data)


def npz_zeros_clip(frames: int = 1000, side: int = 512) -> bytes:
    """The outside probe's NPZ: `frames` uint8 (frames, side, side) of zeros, ~267 KB for 1000×512×512
    (written in slices: the 262 MB array never exists)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("frames.npy", "w", force_zip64=True) as member:
            header = {"descr": "|u1", "fortran_order": False, "shape": (frames, side, side)}
            np.lib.format.write_array_header_1_0(member, header)
            for _ in range(frames):
                member.write(bytes(side * side))
    return buffer.getvalue()


def nifti_gz_zeros(shape: tuple[int, ...], dtype: type = np.uint8) -> bytes:
    """A .nii.gz of zeros of `shape` (the data compressed in slices, never held whole)."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_data_offset(352)  # the 348-byte header, then 4 bytes of (no) extensions
    head = header.binaryblock + bytes(int(header.get_data_offset()) - len(header.binaryblock))
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    parts = [compressor.compress(head)]
    slice_bytes = bytes(shape[0] * shape[1] * np.dtype(dtype).itemsize)
    for _ in range(int(np.prod(shape[2:], dtype=np.int64))):
        parts.append(compressor.compress(slice_bytes))
    parts.append(compressor.flush())
    return b"".join(parts)


def not_a_medical_file() -> bytes:
    return b"%PDF-1.7\n" + bytes(100)


def empty_file() -> bytes:
    return b""


CASES: dict[str, HostileCase] = {
    "png-bomb": HostileCase(png_bomb, "image_prior", 413, "bomb", "bomb.png"),
    "png-lying-dimensions": HostileCase(png_lying_dimensions, "image_prior", 413, "bomb", "x.png"),
    "png-truncated": HostileCase(png_truncated, "image_prior", 422, "truncated or corrupt", "t.png"),
    "dicom-truncated": HostileCase(dicom_truncated, "reference_clip", 422, "DICOM", "t.dcm"),
    "dicom-huge-dimensions": HostileCase(dicom_huge_dimensions, "reference_clip", 413, "exceed", "h.dcm"),
    "dicom-oversized": HostileCase(dicom_oversized, "image_prior", 413, "exceeds the limit", "o.dcm"),
    "nifti-truncated": HostileCase(nifti_truncated, "reference_clip", 422, "header declares", "t.nii"),
    "nifti-huge-dimensions": HostileCase(nifti_huge_dimensions, "reference_clip", 413, "exceeds", "h.nii"),
    "nifti-gzip-bomb": HostileCase(
        nifti_gzip_bomb, "reference_clip", 413, "exceeds the limit", "bomb.nii.gz"
    ),
    "nifti-oversized": HostileCase(nifti_oversized, "reference_clip", 413, "exceeds the limit", "o.nii"),
    "mp4-truncated": HostileCase(mp4_truncated, "reference_clip", 422, "video", "t.mp4"),
    "mp4-huge-dimensions": HostileCase(mp4_huge_dimensions, "reference_clip", 413, "exceed", "h.mp4"),
    "mp4-oversized": HostileCase(mp4_oversized, "reference_clip", 413, "exceeds the limit", "o.mp4"),
    "npy-pickled": HostileCase(npy_pickled, "image_prior", 422, "pickled", "p.npy"),
    "npy-huge-declared-shape": HostileCase(npy_huge_declared_shape, "image_prior", 413, "exceeds", "h.npy"),
    "npz-bomb": HostileCase(npz_bomb, "reference_clip", 413, "exceeds the limit", "bomb.npz"),
    "npz-lying-member-size": HostileCase(npz_lying_member_size, "reference_clip", 413, "unpacks", "lie.npz"),
    "not-a-medical-file": HostileCase(not_a_medical_file, "image_prior", 422, "unrecognised format", "a.pdf"),
    "empty": HostileCase(empty_file, "image_prior", 422, "empty", "e.png"),
}

TRAVERSAL_NAMES = (
    "../../etc/passwd.png",
    "..\\..\\windows\\win.ini.png",
    "/etc/shadow.png",
    "....//....//x.png",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd.png",
    "a\x00.png",
)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: make_corpus.py OUT_DIR")
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        (out / f"{name}--{case.kind}--{case.filename}").write_bytes(case.build())
    print(f"{len(CASES)} hostile files in {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
