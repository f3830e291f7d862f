"""NumPy `.npy` / `.npz` arrays `(F, H, W)` or `(F, H, W, 3|4)`; pickles are never loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest.errors import IngestError
from ingest.intensity import rgb_to_luminance
from ingest.sequence import RawSequence

ARRAY_SUFFIXES = (".npy", ".npz")


def _load(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as loaded:
        if isinstance(loaded, np.ndarray):
            return np.asarray(loaded)
        keys = list(loaded.keys())
        if "frames" in keys:
            return np.asarray(loaded["frames"])
        if len(keys) == 1:
            return np.asarray(loaded[keys[0]])
        raise IngestError(path.name, f"NPZ holds {keys}; name the clip array 'frames'")


def _load_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        return _load(path)
    except IngestError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise IngestError(
                path.name, "pickled object array refused: arrays are loaded with allow_pickle=False"
            ) from exc
        raise IngestError(path.name, f"unreadable array: {exc}") from exc
    except Exception as exc:  # zip/format errors from truncated or foreign files
        raise IngestError(path.name, f"unreadable array: {type(exc).__name__}: {exc}") from exc


def read_array(path: Path) -> list[RawSequence]:
    """Axis 0 is always the frame/slice axis; a last axis of 3 or 4 is RGB(A) and becomes luma."""
    array = _load_array(path)
    if not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
        or array.dtype == np.bool_
    ):
        raise IngestError(path.name, f"dtype {array.dtype}: expected integer, float or bool values")
    if array.ndim == 4 and array.shape[-1] in (3, 4):
        frames = rgb_to_luminance(array)
    elif array.ndim == 3:
        frames = array.astype(np.float32)
    else:
        raise IngestError(path.name, f"array of shape {array.shape}: expected (F, H, W) or (F, H, W, 3)")
    return [RawSequence(frames)]
