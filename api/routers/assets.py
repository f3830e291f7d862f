"""Uploading condition assets (image priors; reference clips → motion fields), content-addressed."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, Response, UploadFile, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import JobsWriteProjectDep, ProjectDep, SessionDep, StateDep
from api.errors import ERROR_RESPONSES, ErrorResponse, field_error, not_found
from api.schemas import AssetOut
from api.state import ServiceState
from api.uploads import UploadLimits, UploadRejected, decode_upload
from store.assets import find_asset, stage_asset
from store.models import Asset, AssetKind, ModelRecord
from store.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1/assets", tags=["assets"], responses=ERROR_RESPONSES)
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def display_filename(name: str | None) -> str:
    """The base name only, restricted to harmless characters (it is shown, never used as a path)."""
    base = PureWindowsPath(PurePosixPath(name or "upload").name).name
    cleaned = _UNSAFE.sub("_", base).strip(" .") or "upload"
    return cleaned[:255]


def upload_limits(state: ServiceState, session: Session) -> UploadLimits:
    """The settings' limits; an upload keeps the frames and frame size of the largest registered model (each
    at most `condition_max_*`; those alone when no model is registered)."""
    settings = state.settings
    frames, height, width = session.execute(
        select(func.max(ModelRecord.num_frames), func.max(ModelRecord.height), func.max(ModelRecord.width))
    ).one()
    return UploadLimits(
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_image_pixels,
        max_frames=settings.max_clip_frames,
        max_voxels=settings.max_clip_voxels,
        keep_frames=min(frames or settings.condition_max_frames, settings.condition_max_frames),
        keep_height=min(height or settings.condition_max_side, settings.condition_max_side),
        keep_width=min(width or settings.condition_max_side, settings.condition_max_side),
        max_seconds=settings.max_upload_seconds,
    )


def decode_asset(
    state: ServiceState, limits: UploadLimits, data: bytes, kind: AssetKind
) -> tuple[str, np.ndarray]:
    """(media type, array to store): the image prior itself, or the reference clip's motion field."""
    decoded = decode_upload(data, kind, limits)
    if kind == AssetKind.image_prior:
        return decoded.media_type, decoded.array
    field = np.asarray(state.extract_motion(decoded.array), dtype=np.float32)
    expected = (decoded.array.shape[0], 2, *decoded.array.shape[1:])
    if field.shape != expected:
        raise UploadRejected(f"file: motion extraction gave shape {field.shape}, expected {expected}")
    return decoded.media_type, field


@router.post(
    "",
    response_model=AssetOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": AssetOut, "description": "these bytes were uploaded before: the existing asset"},
        413: {"model": ErrorResponse, "description": "upload, image or clip too large"},
    },
)
async def upload_asset(
    state: StateDep,
    session: SessionDep,
    project: JobsWriteProjectDep,
    response: Response,
    file: Annotated[
        UploadFile, File(description="image prior: PNG/JPEG/DICOM/NIfTI/NPY; clip: MP4/AVI/DICOM/NIfTI/NPZ")
    ],
    kind: Annotated[AssetKind, Form()],
) -> AssetOut:
    """Upload a condition: an image prior (`kind=image_prior`: PNG/JPEG/DICOM/NIfTI/NPY, the first frame or
    slice) or a reference clip (`kind=reference_clip`: MP4/AVI/DICOM/NIfTI/NPZ, stored as its motion field).
    Content-addressed: the same bytes give the same asset (200 instead of 201)."""
    max_bytes = state.settings.max_upload_bytes
    data = await file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise field_error(
            413, ["body", "file"], f"upload exceeds the limit of {max_bytes} bytes", "too_large"
        )
    existing = find_asset(session, project.id, kind, hashlib.sha256(data).hexdigest())
    if existing is not None:
        response.status_code = status.HTTP_200_OK
        return AssetOut.model_validate(existing)
    try:
        limits = upload_limits(state, session)
        media_type, array = await run_in_threadpool(decode_asset, state, limits, data, kind)
    except UploadRejected as exc:
        raise field_error(exc.status_code, ["body", "file"], str(exc)) from exc
    project_id = project.id

    def store_asset() -> Asset:
        with unit_of_work(session, state.object_store) as staged:
            return stage_asset(
                session,
                staged,
                project_id=project_id,
                kind=kind,
                original=data,
                media_type=media_type,
                filename=display_filename(file.filename),
                array=array,
            )

    return AssetOut.model_validate(await run_in_threadpool(store_asset))


@router.get("/{asset_id}", response_model=AssetOut)
def get_asset(asset_id: uuid.UUID, session: SessionDep, project: ProjectDep) -> AssetOut:
    """One uploaded asset of the project: kind, checksum, shape."""
    asset = session.get(Asset, asset_id)
    if asset is None or asset.project_id != project.id:
        raise not_found(["path", "asset_id"], "asset")
    return AssetOut.model_validate(asset)
