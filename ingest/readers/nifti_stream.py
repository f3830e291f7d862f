"""NIfTI bytes read as a stream, header first, oriented exactly as `read_nifti` orients a file: the volume
in RAS order (`as_closest_canonical`), frames are axial slices shown by `slice_volume`.

Voxels are stored x fastest, so each stored (x, y) plane is one contiguous block: planes that hold no kept
frame are skipped (a gzip stream inflates them, nothing is kept) and reading stops after the last one.
"""

from __future__ import annotations

from typing import Any

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, io_orientation

from ingest.readers.budget import (
    MediaRejected,
    Readable,
    ReadLimits,
    check_frames,
    check_values,
    read_exactly,
    skip,
)
from ingest.readers.collect import FrameCollector
from ingest.readers.volume import slice_volume

AXIAL = 2  # RAS axis the frames are sliced along (read_source's default axis)
UNSCALED = (1.0, 1.0, 1.0)  # the voxel size only sets a sequence's pixel spacing, which frames here ignore
IDENTITY = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)


def _header(stream: Readable) -> Any:
    from nibabel.spatialimages import HeaderDataError

    magic = read_exactly(stream, 4, "NIfTI header")
    header_class = nib.Nifti2Header if int.from_bytes(magic, "little") == 540 else nib.Nifti1Header
    block = magic + read_exactly(stream, header_class.sizeof_hdr - 4, "NIfTI header")
    try:
        return header_class(block, check=True)
    except (HeaderDataError, ValueError) as exc:
        raise MediaRejected(f"unreadable NIfTI header ({exc})") from exc


def _orientation(header: Any) -> np.ndarray:
    """Stored axis → (RAS axis, direction) as `as_closest_canonical` finds it; identity for a degenerate
    affine."""
    ornt = io_orientation(header.get_best_affine())
    return IDENTITY if np.isnan(ornt).any() else ornt


def read_nifti_stream(
    stream: Readable, size: int | None, collector: FrameCollector, limits: ReadLimits
) -> None:
    """NIfTI as frames (F, H, W): 2D → one frame, 3D → axial slices, 4D → time at the mid axial slice.

    `size` is the file's size when known (uncompressed), to refuse a header that declares more data than the
    file holds.
    """
    header = _header(stream)
    try:
        shape = tuple(int(n) for n in header.get_data_shape())
        dtype = header.get_data_dtype()
        offset = int(header.get_data_offset())
        slope, intercept = header.get_slope_inter()
        ornt = _orientation(header)
    except Exception as exc:  # noqa: BLE001 - nibabel reports broken headers with many types
        raise MediaRejected(f"unreadable NIfTI header ({exc})") from exc
    if not 2 <= len(shape) <= 4:
        raise MediaRejected(f"NIfTI with {len(shape)} dimensions; expected 2 to 4")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise MediaRejected(f"NIfTI data type {dtype} is not a plain number type")
    check_values(shape, limits)
    volume = (*shape[:3], 1, 1)[:3]
    canonical = [0, 0, 0]
    for stored, (ras, _) in enumerate(ornt):
        canonical[int(ras)] = volume[stored]
    volumes = shape[3] if len(shape) == 4 else 1
    count = volumes if len(shape) == 4 else canonical[AXIAL]
    check_frames(count, canonical[1], canonical[0], limits)
    needed = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size is not None and needed > size:
        raise MediaRejected(
            f"NIfTI header declares shape {shape} needing {needed} bytes, but the file holds {size}"
        )
    kept = (
        range(canonical[AXIAL] // 2, canonical[AXIAL] // 2 + 1)
        if len(shape) == 4
        else range(min(count, collector.keep_frames))
    )
    reader = _PlaneReader(stream, volume, dtype, ornt, collector)
    skip(stream, offset - header.sizeof_hdr, "NIfTI data", collector.deadline)
    for index in range(min(volumes, collector.keep_frames)):
        sub = reader.read(kept, last=index + 1 == min(volumes, collector.keep_frames))
        if slope is not None:
            sub = sub * np.float32(slope) + np.float32(intercept or 0)
        oriented = apply_orientation(sub, ornt)
        for axial in range(oriented.shape[AXIAL]):  # one float32 frame at a time, not the kept sub-volume
            frame = slice_volume(oriented[:, :, axial : axial + 1], UNSCALED, AXIAL).frames[0]
            if sub.dtype == np.uint8:
                frame = frame.astype(np.uint8)  # exact: uint8 voxels are kept as they are, not rescaled
            collector.add(frame)


class _PlaneReader:
    """Reads one stored volume plane by plane, keeping only the stored indices of the kept axial slices."""

    def __init__(
        self,
        stream: Readable,
        volume: tuple[int, ...],
        dtype: np.dtype,
        ornt: np.ndarray,
        collector: FrameCollector,
    ) -> None:
        self.stream, self.shape, self.dtype, self.collector = stream, volume, dtype, collector
        self.axis = int(np.flatnonzero(ornt[:, 0] == AXIAL)[0])
        self.flipped = bool(ornt[self.axis, 1] < 0)
        self.plane_bytes = volume[0] * volume[1] * dtype.itemsize

    def read(self, kept: range, last: bool) -> np.ndarray:
        """The stored volume restricted, along the stored axis that becomes axial, to the kept slices."""
        length = self.shape[self.axis]
        indices = sorted(length - 1 - c if self.flipped else c for c in kept)
        shape = list(self.shape)
        shape[self.axis] = len(indices)
        sub = np.empty(shape, dtype=self.dtype)
        deadline = self.collector.deadline
        for z in range(self.shape[2]):
            if self.axis == 2 and z not in indices:
                if last and z > indices[-1]:
                    break  # nothing kept lies further on
                skip(self.stream, self.plane_bytes, "NIfTI data", deadline)
                continue
            deadline.check()
            raw = read_exactly(self.stream, self.plane_bytes, "NIfTI data")
            plane = np.frombuffer(raw, dtype=self.dtype).reshape(self.shape[1], self.shape[0]).T
            if self.axis == 2:
                sub[:, :, indices.index(z)] = plane
            elif self.axis == 0:
                sub[:, :, z] = plane[indices, :]
            else:
                sub[:, :, z] = plane[:, indices]
        return sub
