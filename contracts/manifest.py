"""A line of a data build's `manifest.jsonl`: the fields every reader of a build needs.

`ctrlgenaug data build` writes `ingest.manifest.ClipRecord`, which adds the rest; the store registers builds
from these fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ManifestLine(BaseModel):
    """One clip of a data build; other fields of the line are ignored."""

    model_config = ConfigDict(extra="ignore")

    clip_id: str
    path: str
    sha256: str
    class_name: str
    class_index: int
    text: str | None = None
    patient_id: str | None = None
    split: Literal["train", "test"]
