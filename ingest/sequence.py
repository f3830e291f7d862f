"""What every reader returns: one sequence of grayscale frames or slices in its native units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawSequence:
    """Frames `(F, H, W)` float32 in native units (HU for rescaled CT, raw intensity otherwise).

    `part` tells sequences of one input apart ("" for the only one, "t3" for volume 3 of a 4D
    NIfTI); `pixel_spacing` is (row, column) in mm when the file says so; `modality` is the
    DICOM-style code the file declares ("CT", "MR", "US", ...) or None; `inverted` marks
    MONOCHROME1 data, where higher values display darker.
    """

    frames: np.ndarray
    part: str = ""
    pixel_spacing: tuple[float, float] | None = None
    modality: str | None = None
    inverted: bool = False

    def __post_init__(self) -> None:
        if self.frames.ndim != 3:
            raise ValueError(f"frames must be (F, H, W), got shape {self.frames.shape}")
        if self.frames.dtype != np.float32:
            raise ValueError(f"frames must be float32, got {self.frames.dtype}")
