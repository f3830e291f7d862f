"""The labels file: CSV and JSONL rows, and errors that name the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.labels import read_labels


def test_csv_rows_with_optional_fields(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "source,class,text,patient_id,modality,window,stride\n"
        "a.dcm,mild,hypoechoic plaque,P1,us,,\n"
        "vol.nii.gz,severe,,P2,,ct:-100,200,2\n".replace("ct:-100,200", '"ct:-100,200"')
    )
    first, second = read_labels(path)
    assert (first.source, first.class_name, first.text, first.patient_id, first.modality) == (
        "a.dcm",
        "mild",
        "hypoechoic plaque",
        "P1",
        "US",
    )
    assert (second.text, second.window, second.stride, second.modality) == ("", "ct:-100,200", 2, None)


def test_jsonl_rows_accept_numeric_patient_ids(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"source": "s/a", "class": "CT", "patient_id": 17}\n\n'
        '{"source": "b.npy", "class": "MR", "patient_id": "x"}\n'
    )
    rows = read_labels(path)
    assert [r.patient_id for r in rows] == ["17", "x"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("source,class\na.dcm,mild\n", r"labels\.csv line 2: field 'patient_id': Field required"),
        (
            "source,class,patient_id,grade\na.dcm,mild,P1,3\n",
            r"line 2: field 'grade': Extra inputs are not permitted",
        ),
        (
            "source,class,patient_id,window\na.dcm,mild,P1,hu:1\n",
            r"line 2: field 'window': .*expected 'ct:LOW,HIGH'",
        ),
        (
            "source,class,patient_id,stride\na.dcm,mild,P1,0\n",
            r"line 2: field 'stride': .*greater than or equal to 1",
        ),
        (
            "source,class,patient_id\na.dcm,mild,P1\na.dcm,severe,P2\n",
            r"line 3: source 'a\.dcm' already labelled on line 2",
        ),
        ("source,class,patient_id\n", r"labels\.csv: no label rows"),
    ],
)
def test_bad_csv_rows_name_the_line_and_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_labels(path)


def test_bad_jsonl_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"source": "a", "class": "A", "patient_id": "1"}\n{not json}\n')
    with pytest.raises(ValueError, match=r"labels\.jsonl line 2: not JSON"):
        read_labels(path)


def test_other_suffixes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.xlsx"
    path.write_text("")
    with pytest.raises(ValueError, match=r"labels must be \.csv or \.jsonl"):
        read_labels(path)
