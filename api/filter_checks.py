"""A job's filter settings as stored: the reference checks (`memorised`, `off_manifold`) resolved against the
model's data build at submission, so the job records what its filter will run."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from api.errors import field_error
from api.schemas import FilterIn
from store.data_builds import find_data_build, model_memorisation_threshold
from store.models import ModelRecord

REFERENCE_SWITCHES = ("memorised", "off_manifold")


def resolve_filter(
    session: Session, project_id: uuid.UUID, model: ModelRecord, body: FilterIn
) -> dict[str, Any]:
    """`body` with each switch left null turned on when the model names a data build registered in the
    project, off otherwise; a switch asked on without one is a 422 naming it. A memorised check without a
    threshold takes the model's calibrated one when it has one (else the worker calibrates on the build)."""
    settings = body.model_dump(mode="json")
    dataset, reason = find_data_build(session, model, project_id)
    for switch in REFERENCE_SWITCHES:
        if settings[switch] is None:
            settings[switch] = dataset is not None
        elif settings[switch] and dataset is None:
            raise field_error(
                422,
                ["body", "filter", switch],
                f"the {switch} check needs the model's real data build: {reason}",
            )
    if settings["memorised"] and settings["memorised_threshold"] is None:
        settings["memorised_threshold"] = model_memorisation_threshold(Path(model.path))
    return settings
