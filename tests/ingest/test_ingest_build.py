"""`build_dataset` and `ctrlgenaug data build/verify` end to end on tiny real files of every format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from ingest.build import BuildSettings, build_dataset
from ingest.manifest import load_clip, load_manifest, manifest_checksum, verify_clips


@pytest.fixture
def inputs(tmp_path: Path, dicom_writer, video_writer) -> tuple[Path, Path]:
    """Six good sources of two classes over five patients, three broken ones, one unlabelled file."""
    root = tmp_path / "inputs"
    root.mkdir()
    rng = np.random.default_rng(0)
    np.save(root / "p1.npy", rng.integers(0, 255, (20, 24, 32)).astype(np.uint8))
    np.savez(root / "p2.npz", frames=rng.normal(size=(17, 16, 16)).astype(np.float32))
    dicom_writer(
        root / "p3_cine.dcm",
        rng.integers(-1000, 1000, (16, 20, 20)).astype(np.int16),
        Modality="CT",
        RescaleSlope=1,
        RescaleIntercept=0,
    )
    for index in range(9):
        dicom_writer(
            root / "p4_series" / f"{index}.dcm",
            np.full((1, 12, 12), index * 10, np.int16),
            InstanceNumber=index + 1,
            SeriesInstanceUID="1.2.840.1",
        )
    video_writer(root / "p5.mp4", rng.integers(0, 255, (10, 32, 32)).astype(np.uint8))
    np.save(root / "p6.npy", rng.integers(0, 255, (8, 16, 16)).astype(np.uint8))
    truncated = dicom_writer(root / "a.dcm", np.zeros((8, 32, 32), np.int16))
    truncated.write_bytes(truncated.read_bytes()[:-4000])
    np.save(root / "evil.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    np.save(root / "stray.npy", np.zeros((8, 4, 4), np.uint8))
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "source,class,patient_id,text\n"
        "p1.npy,A,P1,first\n"
        "p2.npz,A,P2,\n"
        "p3_cine.dcm,B,P3,ct cine\n"
        "p4_series,B,P4,series\n"
        "p5.mp4,A,P5,video\n"
        "p6.npy,B,P5,same patient as p5\n"
        "a.dcm,A,P6,\n"
        "evil.npy,B,P7,\n"
        "gone.nii.gz,A,P8,\n"
    )
    return root, labels


def test_build_writes_clips_manifest_split_and_report(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    root, labels = inputs
    out = tmp_path / "data"
    settings = BuildSettings(size=16, test_fraction=0.3, seed=1)
    report = build_dataset([root], labels, out, settings)

    rejected = {item["source"]: item["reason"] for item in report.rejected}
    assert set(rejected) == {"a.dcm", "evil.npy", "gone.nii.gz"}
    assert rejected["a.dcm"].startswith("truncated DICOM: pixel data cannot be decoded")
    assert rejected["evil.npy"].startswith("pickled object array refused")
    assert rejected["gone.nii.gz"] == "labelled but not found under the inputs"
    assert report.unlabelled == ["stray.npy"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["rejected"] == report.rejected and saved["unlabelled"] == ["stray.npy"]

    records = load_manifest(out / "manifest.jsonl")
    per_source = {s: sum(r.source == s for r in records) for s in {r.source for r in records}}
    assert per_source == {
        "p1.npy": 2,
        "p2.npz": 2,
        "p3_cine.dcm": 2,
        "p4_series": 1,
        "p5.mp4": 1,
        "p6.npy": 1,
    }
    assert report.clips == 9 and report.sources_read == 6
    assert json.loads((out / "classes.json").read_text()) == {"class_names": ["A", "B"]}
    assert all(r.class_index == ["A", "B"].index(r.class_name) for r in records)
    assert {r.window for r in records if r.source == "p3_cine.dcm"} == {"ct:-1000,400"}
    assert {r.modality for r in records if r.source == "p3_cine.dcm"} == {"CT"}
    assert {r.window for r in records if r.source == "p1.npy"} == {"percentile:1,99"}
    for record in records:
        frames = load_clip(out, record)
        assert frames.shape == (8, 16, 16) and frames.dtype == np.uint8
        assert (record.frames, record.height, record.width) == (8, 16, 16)
    series = load_clip(out, next(r for r in records if r.source == "p4_series"))
    assert np.all(np.diff(series[:, 0, 0].astype(int)) >= 0)  # slices in InstanceNumber order

    sides: dict[str, set[str]] = {}
    for record in records:
        assert record.split_by == "patient"
        sides.setdefault(record.patient_id, set()).add(record.split)
    assert all(len(s) == 1 for s in sides.values())
    assert {r.split for r in records} == {"train", "test"}
    assert verify_clips(out, records) == []
    assert report.manifest_sha256 == manifest_checksum(out / "manifest.jsonl")


def test_motion_fields_and_pathways_are_cached_deterministically(
    tmp_path: Path, inputs: tuple[Path, Path]
) -> None:
    root, labels = inputs
    first = build_dataset([root], labels, tmp_path / "one", BuildSettings(size=16, motion=True))
    second = build_dataset([root], labels, tmp_path / "two", BuildSettings(size=16, motion=True))
    assert first.motion == "field+pathways"
    assert first.manifest_sha256 == second.manifest_sha256  # clips, fields and pathways byte-identical
    records = load_manifest(tmp_path / "one" / "manifest.jsonl")
    assert verify_clips(tmp_path / "one", records) == []
    with np.load(tmp_path / "one" / records[0].motion_path) as cached:
        assert cached["field"].shape == (8, 2, 16, 16) and cached["field"].dtype == np.float32
        assert not cached["field"][0].any()
        assert int(cached["pathways_m"]) == 8
        pathways = cached["pathways"]
        valid = np.sort(pathways[pathways >= 0])
        np.testing.assert_array_equal(valid, np.arange(8 * 2 * 2))  # every patch of every frame once


def test_pathways_are_skipped_when_size_is_not_a_multiple_of_m(
    tmp_path: Path, inputs: tuple[Path, Path]
) -> None:
    root, labels = inputs
    report = build_dataset([root], labels, tmp_path / "data", BuildSettings(size=12, motion=True))
    assert report.motion == "field"
    record = load_manifest(tmp_path / "data" / "manifest.jsonl")[0]
    with np.load(tmp_path / "data" / record.motion_path) as cached:
        assert set(cached.files) == {"field"}


def test_existing_clip_set_needs_overwrite(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    root, labels = inputs
    settings = BuildSettings(size=16, motion=False)
    build_dataset([root], labels, tmp_path / "data", settings)
    with pytest.raises(ValueError, match="already holds a clip set; pass overwrite"):
        build_dataset([root], labels, tmp_path / "data", settings)
    (tmp_path / "data" / "clips" / "leftover.npz").write_bytes(b"old")
    build_dataset([root], labels, tmp_path / "data", settings, overwrite=True)
    assert not (tmp_path / "data" / "clips" / "leftover.npz").exists()


def test_source_too_short_for_one_clip_is_reported(tmp_path: Path) -> None:
    np.save(tmp_path / "short.npy", np.zeros((5, 8, 8), np.uint8))
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"source": "short.npy", "class": "A", "patient_id": "1"}\n')
    report = build_dataset(
        [tmp_path / "short.npy"], labels, tmp_path / "data", BuildSettings(size=8, motion=False)
    )
    assert report.clips == 0
    assert report.rejected == [
        {"source": "short.npy", "reason": "5 frames/slices: one clip of 8 at stride 1 needs 8"}
    ]


def test_cli_build_prints_summary_and_rejections_then_verify(
    tmp_path: Path, inputs: tuple[Path, Path]
) -> None:
    root, labels = inputs
    out = tmp_path / "data"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "data",
            "build",
            "--inputs",
            str(root),
            "--labels",
            str(labels),
            "--out",
            str(out),
            "--size",
            "16",
            "--no-motion",
            "--window",
            "percentile:2,98",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "9 clips from 6 sources" in result.output
    assert "rejected a.dcm: truncated DICOM" in result.output
    assert "rejected evil.npy: pickled object array refused" in result.output
    assert {r.window for r in load_manifest(out / "manifest.jsonl")} == {"percentile:2,98"}

    verified = runner.invoke(app, ["data", "verify", str(out)])
    assert verified.exit_code == 0 and "9 clips, 0 problems" in verified.output
    clip = next((out / "clips").iterdir())
    clip.write_bytes(clip.read_bytes() + b"x")
    tampered = runner.invoke(app, ["data", "verify", str(out)])
    assert tampered.exit_code == 1 and "does not match its SHA-256" in tampered.output


def test_cli_build_refuses_a_bad_window(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    root, labels = inputs
    result = CliRunner().invoke(
        app,
        [
            "data",
            "build",
            "--inputs",
            str(root),
            "--labels",
            str(labels),
            "--out",
            str(tmp_path / "d"),
            "--window",
            "hu:1,2",
        ],
    )
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())  # undo rich's boxed line wrapping
    assert "field 'window': Value error, window 'hu:1,2': expected 'ct:LOW,HIGH'" in message
