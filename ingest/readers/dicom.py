"""DICOM: a multi-frame file (cine, enhanced CT/MR) or a folder holding one single-frame series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.misc import is_dicom
from pydicom.pixels import apply_modality_lut, pixel_array

from ingest.errors import IngestError
from ingest.intensity import rgb_to_luminance
from ingest.sequence import RawSequence

DICOM_SUFFIXES = (".dcm", ".dicom")
FULL_RANGE_YBR = ("YBR_FULL", "YBR_FULL_422")


def _read_dataset(path: Path, name: str) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError as exc:
        raise IngestError(name, f"not a DICOM file: {exc}") from exc
    except Exception as exc:  # pydicom raises EOFError/OSError/struct errors for cut-off headers
        raise IngestError(name, f"truncated DICOM header: {type(exc).__name__}: {exc}") from exc


def colour_decoding(ds: Dataset, name: str) -> tuple[int, bool]:
    """(samples per pixel, whether luma is the stored Y plane of full-range YBR rather than BT.601 of RGB)."""
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples not in (1, 3):
        raise IngestError(name, f"{samples} samples per pixel: only grayscale and colour (3) are read")
    y_plane = samples == 3 and str(ds.get("PhotometricInterpretation", "")) in FULL_RANGE_YBR
    return samples, y_plane


def to_gray(pixels: np.ndarray, samples: int, y_plane: bool) -> np.ndarray:
    """Decoded pixels (decoded `as_rgb` unless `y_plane`) as grayscale: colour is reduced to luma."""
    if samples == 1:
        return pixels
    return pixels[..., 0].astype(np.float32) if y_plane else rgb_to_luminance(pixels)


def is_inverted(ds: Dataset) -> bool:
    """MONOCHROME1: higher values display darker."""
    return str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"


def _gray_pixels(ds: Dataset, name: str) -> np.ndarray:
    """Stored values as `(F, H, W)`; colour is reduced to luma: the Y plane of full-range YBR as stored,
    else BT.601 of the RGB that pydicom converts to."""
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise IngestError(name, "truncated DICOM: the file has no pixel data element")
    samples, y_plane = colour_decoding(ds, name)
    try:
        pixels = pixel_array(ds, as_rgb=samples == 3 and not y_plane)
    except Exception as exc:  # decoders report short or corrupt pixel data with varied types
        raise IngestError(name, f"truncated DICOM: pixel data cannot be decoded: {exc}") from exc
    pixels = to_gray(pixels, samples, y_plane)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels.reshape(frames, *pixels.shape[-2:]) if pixels.ndim == 2 else pixels


def _functional_rescale(group: Dataset) -> tuple[float, float] | None:
    transforms = group.get("PixelValueTransformationSequence")
    if not transforms:
        return None
    item = transforms[0]
    return float(item.get("RescaleSlope", 1.0)), float(item.get("RescaleIntercept", 0.0))


def _native_units(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """Apply the modality LUT / RescaleSlope+Intercept (top level or enhanced functional groups)."""
    if "ModalityLUTSequence" in ds or ("RescaleSlope" in ds and "RescaleIntercept" in ds):
        return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared_rescale = _functional_rescale(shared[0]) if shared else None
    out = pixels.astype(np.float32)
    for index in range(out.shape[0]):
        rescale = (_functional_rescale(per_frame[index]) if per_frame else None) or shared_rescale
        if rescale is not None:
            out[index] = out[index] * rescale[0] + rescale[1]
    return out


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    spacing = ds.get("PixelSpacing")
    shared = ds.get("SharedFunctionalGroupsSequence")
    if spacing is None and shared and shared[0].get("PixelMeasuresSequence"):
        spacing = shared[0].PixelMeasuresSequence[0].get("PixelSpacing")
    return (float(spacing[0]), float(spacing[1])) if spacing else None


def _sequence(frames: np.ndarray, ds: Dataset) -> RawSequence:
    return RawSequence(
        frames=frames,
        pixel_spacing=_pixel_spacing(ds),
        modality=str(ds.get("Modality")) if ds.get("Modality") else None,
        inverted=is_inverted(ds),
    )


def read_dicom_file(path: Path) -> list[RawSequence]:
    ds = _read_dataset(path, path.name)
    return [_sequence(_native_units(_gray_pixels(ds, path.name), ds), ds)]


def _slice_position(ds: Dataset) -> float | None:
    """Distance along the slice normal (row × column direction cosines) of ImagePositionPatient."""
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if position is None or orientation is None:
        return None
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    return float(np.dot(normal, np.asarray(position, float)))


def _series_order(datasets: list[Dataset]) -> list[int]:
    positions = [_slice_position(ds) for ds in datasets]
    if all(p is not None for p in positions):
        return sorted(range(len(datasets)), key=lambda i: positions[i])  # type: ignore[arg-type, return-value]
    numbers = [ds.get("InstanceNumber") for ds in datasets]
    if all(n is not None for n in numbers):
        return sorted(range(len(datasets)), key=lambda i: int(numbers[i]))  # type: ignore[arg-type]
    return list(range(len(datasets)))


def read_dicom_series(folder: Path) -> list[RawSequence]:
    """A folder of single-frame DICOM files of one series, ordered by slice position along the
    normal when every file has ImagePositionPatient/ImageOrientationPatient, else InstanceNumber,
    else file name. Files that are not DICOM (no `.dcm` suffix and no DICM preamble) are ignored."""
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and (p.suffix.lower() in DICOM_SUFFIXES or is_dicom(p))
    )
    if not files:
        raise IngestError(folder.name, "folder holds no DICOM files")
    datasets = [_read_dataset(p, f"{folder.name}/{p.name}") for p in files]
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in datasets}
    if len(series) > 1:
        raise IngestError(folder.name, f"folder holds {len(series)} series; give one series per folder")
    slices: list[np.ndarray] = []
    for path, ds in zip(files, datasets, strict=True):
        pixels = _gray_pixels(ds, f"{folder.name}/{path.name}")
        if pixels.shape[0] != 1:
            raise IngestError(
                f"{folder.name}/{path.name}", f"{pixels.shape[0]} frames in a series file; expected 1"
            )
        if slices and pixels.shape[1:] != slices[0].shape[1:]:
            raise IngestError(
                f"{folder.name}/{path.name}",
                f"frame size {pixels.shape[1:]} differs from {slices[0].shape[1:]}",
            )
        slices.append(_native_units(pixels, ds))
    order = _series_order(datasets)
    stacked = np.concatenate([slices[i] for i in order]).astype(np.float32, copy=False)
    return [_sequence(stacked, datasets[order[0]])]
