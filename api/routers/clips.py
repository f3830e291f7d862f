"""A clip with its full provenance record."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import ProjectDep, SessionDep, StateDep
from api.errors import ERROR_RESPONSES, not_found
from api.schemas import ClipDetail
from api.views import clip_fields
from store.models import Clip, Job
from store.provenance import clip_provenance

router = APIRouter(prefix="/v1/clips", tags=["clips"], responses=ERROR_RESPONSES)


@router.get("/{clip_id}", response_model=ClipDetail)
def get_clip(clip_id: uuid.UUID, session: SessionDep, project: ProjectDep, state: StateDep) -> ClipDetail:
    clip = session.scalar(select(Clip).join(Job).where(Clip.id == clip_id, Job.project_id == project.id))
    if clip is None:
        raise not_found(["path", "clip_id"], "clip")
    expiry = state.settings.presigned_expiry_s
    return ClipDetail.model_validate(
        {
            **clip_fields(clip, state.object_store, expiry),
            "download_url": state.object_store.presigned_get(clip.object_key, expiry),
            "provenance": clip_provenance(session, clip),
        }
    )
