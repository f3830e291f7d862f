"""Slicing a 3D volume held in RAS axis order into a sequence of 2D slices."""

from __future__ import annotations

import numpy as np

from ingest.sequence import RawSequence


def slice_volume(
    volume: np.ndarray,
    zooms: tuple[float, float, float],
    axis: int,
    part: str = "",
    modality: str | None = None,
) -> RawSequence:
    """Slices along `axis` of an (x, y, z) volume whose axes point Right, Anterior, Superior.

    Axis 2 gives axial slices (inferior → superior), 1 coronal, 0 sagittal. Each slice is shown
    with the later of its two remaining axes pointing up and the earlier pointing right
    (anterior or superior at the top, neurological left-right).
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    in_plane = [a for a in range(3) if a != axis]
    slices = np.moveaxis(volume, axis, 0).transpose(0, 2, 1)[:, ::-1, :]
    spacing = (float(zooms[in_plane[1]]), float(zooms[in_plane[0]]))
    return RawSequence(np.ascontiguousarray(slices, dtype=np.float32), part, spacing, modality)
