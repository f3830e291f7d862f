"""The model directory's quality card (`quality.json`, beside `ctrlgenaug_model.json`).

It is a file of the model directory, so the model checksum covers it like every other file: writing it
gives the directory a new checksum (evaluate before registering, or register under a new version).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from quality.evaluate import QualityReport

QUALITY_CARD = "quality.json"


def write_quality_card(model_dir: str | Path, report: QualityReport) -> Path:
    """Write the report as `quality.json` in the model directory (atomically)."""
    path = Path(model_dir) / QUALITY_CARD
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def read_quality_card(model_dir: str | Path) -> dict[str, Any] | None:
    path = Path(model_dir) / QUALITY_CARD
    return json.loads(path.read_text()) if path.is_file() else None
