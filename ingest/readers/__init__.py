"""One entry point: `read_source(path, axis)` picks the reader by what `path` is."""

from __future__ import annotations

from pathlib import Path

from pydicom.misc import is_dicom

from ingest.errors import IngestError
from ingest.readers.arrays import ARRAY_SUFFIXES, read_array
from ingest.readers.dicom import DICOM_SUFFIXES, read_dicom_file, read_dicom_series
from ingest.readers.invesalius import read_invesalius
from ingest.readers.nifti import read_nifti
from ingest.readers.video import VIDEO_SUFFIXES, read_video
from ingest.sequence import RawSequence

NIFTI_SUFFIXES = (".nii", ".nii.gz")
INVESALIUS_SUFFIXES = (".inv3",)
KNOWN_SUFFIXES = DICOM_SUFFIXES + NIFTI_SUFFIXES + VIDEO_SUFFIXES + ARRAY_SUFFIXES + INVESALIUS_SUFFIXES


def has_known_suffix(path: Path) -> bool:
    return path.name.lower().endswith(KNOWN_SUFFIXES)


def read_source(path: Path, axis: int = 2) -> list[RawSequence]:
    """Read a file or a DICOM-series folder; `axis` picks the slice axis of volumes (RAS: 2 = axial).

    Raises `IngestError` naming the file and the reason when it cannot be read.
    """
    name = path.name.lower()
    if path.is_dir():
        return read_dicom_series(path)
    if not path.is_file():
        raise IngestError(path.name, "no such file or folder")
    if name.endswith(NIFTI_SUFFIXES):
        return read_nifti(path, axis)
    if name.endswith(INVESALIUS_SUFFIXES):
        return read_invesalius(path, axis)
    if name.endswith(VIDEO_SUFFIXES):
        return read_video(path)
    if name.endswith(ARRAY_SUFFIXES):
        return read_array(path)
    if name.endswith(DICOM_SUFFIXES) or is_dicom(path):
        return read_dicom_file(path)
    raise IngestError(
        path.name, f"unknown input format; expected one of {', '.join(KNOWN_SUFFIXES)} or DICOM"
    )
