"""Reading a filtered synthetic database (docs/contracts.md) from a folder or a ZIP."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASS_NAMES, write_synthetic_db

from classify.synthetic_db import read_synthetic_db


def test_folder_and_zip_give_the_same_clips(tmp_path: Path) -> None:
    folder = write_synthetic_db(tmp_path / "db", count=6)
    archive = Path(shutil.make_archive(str(tmp_path / "db"), "zip", root_dir=folder))
    from_folder = read_synthetic_db(folder, CLASS_NAMES)
    from_zip = read_synthetic_db(archive, CLASS_NAMES)
    assert from_folder.clips.clips.shape == (6, 8, 32, 32)
    assert from_folder.clips.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert np.array_equal(from_zip.clips.clips, from_folder.clips.clips)
    assert from_folder.clips.clips[1].min() >= 165 and from_folder.clips.clips[0].max() <= 90


def test_class_names_follow_the_real_order(tmp_path: Path) -> None:
    folder = write_synthetic_db(tmp_path / "db", count=4)
    with pytest.raises(ValueError, match="class_index 0 disagrees with class 'dark'"):
        read_synthetic_db(folder, ["bright", "dark"])
    inferred = read_synthetic_db(folder)
    assert inferred.class_names == ["dark", "bright"]
    assert inferred.clips.labels.tolist() == [0, 1, 0, 1]


def test_checksum_mismatch_names_the_row(tmp_path: Path) -> None:
    folder = write_synthetic_db(tmp_path / "db", count=3)
    (folder / "clips" / "clip-0001.npz").write_bytes((folder / "clips" / "clip-0000.npz").read_bytes())
    with pytest.raises(ValueError, match="row 3: sha256 of clips/clip-0001.npz"):
        read_synthetic_db(folder, CLASS_NAMES)


def test_unknown_class_and_unsafe_path_are_refused(tmp_path: Path) -> None:
    folder = write_synthetic_db(
        tmp_path / "a",
        count=2,
        extra_rows=[{"path": "clips/clip-0000.npz", "sha256": "0", "class": "severe", "class_index": ""}],
    )
    with pytest.raises(ValueError, match="row 4: class 'severe' is not one of"):
        read_synthetic_db(folder, CLASS_NAMES)
    folder = write_synthetic_db(
        tmp_path / "b",
        count=2,
        extra_rows=[{"path": "../outside.npz", "sha256": "0", "class": "dark", "class_index": "0"}],
    )
    with pytest.raises(ValueError, match="must be relative inside the database"):
        read_synthetic_db(folder, CLASS_NAMES)


def test_clips_without_class_are_counted_not_trained_on(tmp_path: Path) -> None:
    row = {"path": "clips/clip-0000.npz", "sha256": "", "class": "", "class_index": "-1"}
    folder = write_synthetic_db(tmp_path / "db", count=3, extra_rows=[row])
    db = read_synthetic_db(folder, CLASS_NAMES)
    assert db.unlabelled == 1 and len(db.clips) == 3


def test_missing_columns_and_missing_manifest(tmp_path: Path) -> None:
    folder = write_synthetic_db(tmp_path / "db", count=2)
    (folder / "manifest.csv").write_text("path,class\nclips/clip-0000.npz,dark\n")
    with pytest.raises(ValueError, match="missing column"):
        read_synthetic_db(folder, CLASS_NAMES)
    (folder / "manifest.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no manifest.csv"):
        read_synthetic_db(folder, CLASS_NAMES)
