"""Byte-reproducible `.npz` files and SHA-256 of files."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_npz(path: Path, **arrays: np.ndarray) -> str:
    """Write a compressed `.npz` readable by `np.load` and return its SHA-256.

    Written by hand because `np.savez_compressed` stamps the current time into each zip entry,
    so the same arrays would give different bytes (and checksums) on every build.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=False)
    os.replace(partial, path)
    return sha256_file(path)
