"""Tiny real files in every input format, written on the fly (no fixtures checked in)."""

from __future__ import annotations

import io
import plistlib
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def write_dicom(
    path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", **attributes: object
) -> Path:
    """A DICOM file (multi-frame when `pixels` is (F, H, W[, 3])) with the given top-level attributes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.set_pixel_data(pixels, photometric, pixels.dtype.itemsize * 8)
    for name, value in attributes.items():
        setattr(ds, name, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_video(path: Path, frames: np.ndarray, codec: str = "libx264", fps: int = 10) -> Path:
    """Encode uint8 gray frames (F, H, W) with PyAV."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"qp": "0"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="gray")))
        container.mux(stream.encode())
    return path


def write_inv3(path: Path, stack: np.ndarray, spacing: tuple[float, float, float], truncate: int = 0) -> Path:
    """An InVesalius project: gzip tar of main.plist and matrix.dat (stack is (slice, row, column))."""
    main = {
        "matrix": {"dtype": str(stack.dtype), "filename": "matrix.dat", "shape": list(stack.shape)},
        "modality": "CT",
        "orientation": 1,
        "spacing": list(spacing),
    }
    raw = stack.tobytes()[: len(stack.tobytes()) - truncate]
    with tarfile.open(path, "w:gz") as archive:
        for name, data in (("proj/main.plist", plistlib.dumps(main)), ("proj/matrix.dat", raw)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def dicom_writer() -> Callable[..., Path]:
    return write_dicom


@pytest.fixture
def video_writer() -> Callable[..., Path]:
    return write_video


@pytest.fixture
def inv3_writer() -> Callable[..., Path]:
    return write_inv3
