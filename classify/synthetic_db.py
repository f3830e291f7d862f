"""Reader of a filtered synthetic database (a folder or a ZIP), format in docs/contracts.md:
`manifest.csv` (columns path, sha256, class, and optionally class_index, kept, ...) beside
NPZ clips holding `frames` uint8 (F, H, W)."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from classify.data import ClipSet

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("path", "sha256", "class")
_FALSE = {"0", "false", "no", "f", "n"}


@dataclass(frozen=True)
class SyntheticDatabase:
    clips: ClipSet
    class_names: list[str]
    rows: list[dict[str, str]]
    source: str
    # Kept clips without a class condition (class "" / class_index −1): not usable for training.
    unlabelled: int


class _Folder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def exists(self, relative: str) -> bool:
        return (self.root / relative).is_file()


class _Zip:
    def __init__(self, archive: zipfile.ZipFile, prefix: str) -> None:
        self.archive = archive
        self.prefix = prefix
        self.names = set(archive.namelist())

    def read(self, relative: str) -> bytes:
        return self.archive.read(self.prefix + relative)

    def exists(self, relative: str) -> bool:
        return self.prefix + relative in self.names


def _zip_prefix(archive: zipfile.ZipFile, source: Path) -> str:
    manifests = [name for name in archive.namelist() if PurePosixPath(name).name == MANIFEST_NAME]
    top = [name for name in manifests if name.count("/") <= 1]
    if len(top) != 1:
        raise ValueError(f"synthetic database {source}: expected one {MANIFEST_NAME} at the top, found {top}")
    return top[0][: -len(MANIFEST_NAME)]


def _safe_relative(path: str, row_number: int) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(
            f"{MANIFEST_NAME} row {row_number}: path {path!r} must be relative inside the database"
        )
    return str(pure)


def _is_kept(row: dict[str, str]) -> bool:
    return (row.get("kept") or "true").strip().lower() not in _FALSE


def _infer_class_names(rows: list[dict[str, str]]) -> list[str]:
    """Names in `class_index` order when the rows pair every index 0..K−1 with one name,
    otherwise sorted."""
    by_index: dict[int, str] = {}
    for row in rows:
        name, given = (row.get("class") or "").strip(), (row.get("class_index") or "").strip()
        if name and given.lstrip("-").isdigit() and int(given) >= 0:
            by_index.setdefault(int(given), name)
    names = sorted({(row.get("class") or "").strip() for row in rows} - {""})
    if sorted(by_index) == list(range(len(names))) and sorted(by_index.values()) == names:
        return [by_index[k] for k in range(len(names))]
    return names


def _class_index(row: dict[str, str], row_number: int, names: list[str]) -> int | None:
    """The row's class index: from `class` (a name), else from `class_index` (>= 0); None when
    the clip's bank had no class condition (−1 / empty)."""
    name = (row.get("class") or "").strip()
    given = (row.get("class_index") or "").strip()
    try:
        given_index = int(given) if given else -1
    except ValueError:
        raise ValueError(
            f"{MANIFEST_NAME} row {row_number}: class_index {given!r} is not an integer"
        ) from None
    if name:
        if name not in names:
            raise ValueError(f"{MANIFEST_NAME} row {row_number}: class {name!r} is not one of {names}")
        if given_index >= 0 and given_index != names.index(name):
            raise ValueError(
                f"{MANIFEST_NAME} row {row_number}: class_index {given_index} disagrees with class {name!r} "
                f"(index {names.index(name)})"
            )
        return names.index(name)
    if given_index >= len(names):
        raise ValueError(
            f"{MANIFEST_NAME} row {row_number}: class_index {given_index} >= {len(names)} classes"
        )
    return given_index if given_index >= 0 else None


def read_synthetic_db(
    source: str | Path, class_names: Sequence[str] | None = None, verify_checksums: bool = True
) -> SyntheticDatabase:
    """Load the kept clips of a synthetic database. `class_names` (the real data's, in index
    order) maps the `class` column to indices; without it they come from the manifest."""
    source = Path(source)
    if source.is_dir():
        return _read(_Folder(source), source, class_names, verify_checksums)
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            return _read(_Zip(archive, _zip_prefix(archive, source)), source, class_names, verify_checksums)
    raise FileNotFoundError(f"synthetic database: {source} is neither a folder nor a ZIP file")


def _read(
    reader: _Folder | _Zip, source: Path, class_names: Sequence[str] | None, verify_checksums: bool
) -> SyntheticDatabase:
    if not reader.exists(MANIFEST_NAME):
        raise FileNotFoundError(f"synthetic database {source}: no {MANIFEST_NAME}")
    table = csv.DictReader(io.StringIO(reader.read(MANIFEST_NAME).decode("utf-8")))
    missing = [column for column in REQUIRED_COLUMNS if column not in (table.fieldnames or [])]
    if missing:
        raise ValueError(f"{source}/{MANIFEST_NAME}: missing column(s) {', '.join(missing)}")
    numbered = [(number, row) for number, row in enumerate(table, start=2) if _is_kept(row)]
    rows = [row for _, row in numbered]
    if not rows:
        raise ValueError(f"{source}/{MANIFEST_NAME}: no kept clips")
    names = list(class_names) if class_names is not None else _infer_class_names(rows)
    frames: list[np.ndarray] = []
    labels: list[int] = []
    unlabelled = 0
    for number, row in numbered:
        label = _class_index(row, number, names)
        if label is None:
            unlabelled += 1
            continue
        relative = _safe_relative(row["path"], number)
        if not reader.exists(relative):
            raise FileNotFoundError(f"{MANIFEST_NAME} row {number}: {relative} is not in the database")
        payload = reader.read(relative)
        if verify_checksums and hashlib.sha256(payload).hexdigest() != row["sha256"].strip().lower():
            raise ValueError(f"{MANIFEST_NAME} row {number}: sha256 of {relative} does not match")
        with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
            if "frames" not in npz.files:
                raise ValueError(f"{relative}: no `frames` array")
            clip = npz["frames"]
        if clip.dtype != np.uint8 or clip.ndim != 3:
            raise ValueError(f"{relative}: `frames` must be uint8 (F, H, W), got {clip.dtype} {clip.shape}")
        if frames and clip.shape != frames[0].shape:
            raise ValueError(
                f"{relative}: shape {clip.shape} differs from the first clip's {frames[0].shape}"
            )
        frames.append(clip)
        labels.append(label)
    if not frames:
        raise ValueError(f"{source}/{MANIFEST_NAME}: no clip has a class")
    clips = ClipSet(np.stack(frames), np.asarray(labels, np.int64))
    return SyntheticDatabase(clips, names, rows, str(source), unlabelled)
