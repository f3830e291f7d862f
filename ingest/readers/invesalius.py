"""InVesalius 3 projects (`.inv3`: a gzip tar of `main.plist` + a raw volume `matrix.dat`)."""

from __future__ import annotations

import plistlib
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from ingest.errors import IngestError
from ingest.readers.volume import slice_volume
from ingest.sequence import RawSequence

_AXIAL = 1  # InVesalius' orientation code for an axially acquired stack


def _member_bytes(archive: tarfile.TarFile, name: str) -> bytes:
    for member in archive.getmembers():
        if member.isfile() and PurePosixPath(member.name).name == name:
            handle = archive.extractfile(member)
            if handle is not None:
                return handle.read()
    raise KeyError(name)


def read_invesalius(path: Path, axis: int) -> list[RawSequence]:
    try:
        with tarfile.open(path, "r:gz") as archive:
            main = plistlib.loads(_member_bytes(archive, "main.plist"))
            matrix = main["matrix"]
            raw = _member_bytes(archive, PurePosixPath(matrix["filename"]).name)
    except KeyError as exc:
        raise IngestError(path.name, f"InVesalius project lacks {exc}") from exc
    except (tarfile.TarError, OSError, EOFError, plistlib.InvalidFileException) as exc:
        raise IngestError(path.name, f"unreadable InVesalius project: {type(exc).__name__}: {exc}") from exc
    if main.get("orientation") != _AXIAL:
        raise IngestError(path.name, f"orientation {main.get('orientation')!r}: only axial stacks are read")
    shape = tuple(int(n) for n in matrix["shape"])
    dtype = np.dtype(matrix["dtype"])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(shape) != 3 or len(raw) != expected:
        raise IngestError(
            path.name, f"truncated volume: {len(raw)} bytes for shape {shape} {dtype} ({expected})"
        )
    # Stored as (slice, row, column); rows run posterior → anterior (checked on the Debian example:
    # the table lies behind the head) and columns, as in DICOM, from the patient's right to left.
    stack = np.frombuffer(raw, dtype=dtype).reshape(shape)
    volume = stack.transpose(2, 1, 0)[::-1, :, :].astype(np.float32)
    spacing = tuple(float(s) for s in main["spacing"])
    return [slice_volume(volume, (spacing[0], spacing[1], spacing[2]), axis, modality=main.get("modality"))]
