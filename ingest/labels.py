"""The labels file (CSV or JSONL): one row per input source with its class, patient and text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.errors import describe_validation_error
from ingest.geometry import parse_roi
from ingest.intensity import WindowSpec


class LabelRow(BaseModel):
    """`source` is a file or DICOM-series folder, relative to an inputs folder (or a file's name).

    `window`, `stride`, `axis` and `roi` override the build settings for this source only.
    """

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, str_strip_whitespace=True, coerce_numbers_to_str=True
    )

    source: str = Field(min_length=1)
    class_name: str = Field(alias="class", min_length=1)
    patient_id: str = Field(min_length=1)
    text: str = ""
    modality: str | None = None
    window: str | None = None
    stride: int | None = Field(default=None, ge=1)
    axis: int | None = Field(default=None, ge=0, le=2)
    roi: str | None = None

    @field_validator("modality")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None

    @field_validator("window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        return str(WindowSpec.parse(value)) if value else None

    @field_validator("roi")
    @classmethod
    def _roi(cls, value: str | None) -> str | None:
        if value:
            parse_roi(value)
        return value or None


def _raw_rows(path: Path) -> list[tuple[int, dict[str, object]]]:
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return [
                (line, {k: v for k, v in row.items() if v not in ("", None)})
                for line, row in enumerate(csv.DictReader(handle), start=2)
            ]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path.name} line {line}: not JSON: {exc.msg}") from None
            if not isinstance(value, dict):
                raise ValueError(f"{path.name} line {line}: expected a JSON object")
            rows.append((line, {k: v for k, v in value.items() if v not in ("", None)}))
        return rows
    raise ValueError(f"{path.name}: labels must be .csv or .jsonl")


def read_labels(path: Path) -> list[LabelRow]:
    """Rows in file order; raises ValueError naming the line and field of the first bad row."""
    rows: list[LabelRow] = []
    seen: dict[str, int] = {}
    for line, raw in _raw_rows(path):
        try:
            row = LabelRow.model_validate(raw)
        except ValidationError as exc:
            raise ValueError(f"{path.name} line {line}: {describe_validation_error(exc)}") from None
        if row.source in seen:
            raise ValueError(
                f"{path.name} line {line}: source {row.source!r} already labelled on line {seen[row.source]}"
            )
        seen[row.source] = line
        rows.append(row)
    if not rows:
        raise ValueError(f"{path.name}: no label rows")
    return rows
