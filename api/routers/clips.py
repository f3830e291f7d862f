"""A clip: its full provenance record, and PNG strips of its frames and of its conditions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import ProjectDep, SessionDep, StateDep
from api.errors import ERROR_RESPONSES, field_error, not_found
from api.frame_strips import StripKind, clip_strip
from api.schemas import ClipDetail
from api.views import clip_fields
from store.models import Clip, Job, Project
from store.provenance import clip_provenance

router = APIRouter(prefix="/v1/clips", tags=["clips"], responses=ERROR_RESPONSES)


def project_clip(session: Session, project: Project, clip_id: uuid.UUID) -> Clip:
    clip = session.scalar(select(Clip).join(Job).where(Clip.id == clip_id, Job.project_id == project.id))
    if clip is None:
        raise not_found(["path", "clip_id"], "clip")
    return clip


@router.get("/{clip_id}", response_model=ClipDetail)
def get_clip(clip_id: uuid.UUID, session: SessionDep, project: ProjectDep, state: StateDep) -> ClipDetail:
    """One clip with its full provenance: model and checksum, every condition and its checksum, seed, sampler,
    filter scores, the device and precision that computed it."""
    clip = project_clip(session, project, clip_id)
    expiry = state.settings.presigned_expiry_s
    return ClipDetail.model_validate(
        {
            **clip_fields(clip, state.object_store, expiry),
            "download_url": state.object_store.presigned_get(clip.object_key, expiry),
            "provenance": clip_provenance(session, clip),
        }
    )


@router.get(
    "/{clip_id}/strips/{kind}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "frames side by side, left to right"}},
)
def get_clip_strip(
    clip_id: uuid.UUID, kind: StripKind, session: SessionDep, project: ProjectDep, state: StateDep
) -> Response:
    """A PNG of frames side by side: the clip's (`frames`), its bank's image prior (`image_prior`) or the
    source real training clip of a `banks_from` bank (`source`); 404 naming `kind` when it has none."""
    clip = project_clip(session, project, clip_id)
    png = clip_strip(state.object_store, clip, kind)
    if png is None:
        raise field_error(404, ["path", "kind"], f"the clip's bank has no {kind.value}", "not_found")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})
