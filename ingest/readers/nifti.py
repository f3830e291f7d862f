"""NIfTI volumes (nibabel), reoriented to RAS and sliced along a chosen axis; 4D → one per volume."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ingest.errors import IngestError
from ingest.readers.volume import slice_volume
from ingest.sequence import RawSequence


def read_nifti(path: Path, axis: int) -> list[RawSequence]:
    try:
        image = nib.as_closest_canonical(nib.load(path))
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for broken files; all mean "unreadable"
        raise IngestError(path.name, f"unreadable NIfTI: {type(exc).__name__}: {exc}") from exc
    if data.ndim not in (3, 4):
        raise IngestError(path.name, f"NIfTI of shape {data.shape}: expected a 3D or 4D volume")
    x, y, z = (float(v) for v in image.header.get_zooms()[:3])
    zooms = (x, y, z)
    if data.ndim == 3:
        return [slice_volume(data, zooms, axis)]
    return [slice_volume(data[..., t], zooms, axis, part=f"t{t}") for t in range(data.shape[3])]
