"""Registering a data build (manifest.jsonl + clips + motion cache, uploaded as one ZIP)."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api.deps import JobsWriteProjectDep, ProjectDep, SessionDep, StateDep
from api.errors import ERROR_RESPONSES, ErrorResponse, field_error
from api.schemas import NUL_FREE, DatasetOut
from store.datasets import ClipBounds, extract_dataset_archive, register_dataset
from store.models import Dataset
from store.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)


def dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        name=dataset.name,
        manifest_sha256=dataset.manifest_sha256,
        class_names=dataset.class_names,
        training_clips=len(dataset.clips),
        created_at=dataset.created_at,
    )


@router.post(
    "",
    response_model=DatasetOut,
    status_code=status.HTTP_201_CREATED,
    responses={413: {"model": ErrorResponse, "description": "archive too large"}},
)
async def create_dataset(
    state: StateDep,
    session: SessionDep,
    project: JobsWriteProjectDep,
    name: Annotated[str, Form(min_length=1, max_length=100, pattern=NUL_FREE)],
    file: Annotated[UploadFile, File(description="ZIP of a data build: manifest.jsonl, clips, motion/")],
) -> DatasetOut:
    """Register a dataset from a ZIP of a data build (`ctrlgenaug data build`): its TRAINING clips only."""
    max_bytes = state.settings.max_upload_bytes
    archive = await file.read(max_bytes + 1)
    if len(archive) > max_bytes:
        raise field_error(
            413, ["body", "file"], f"upload exceeds the limit of {max_bytes} bytes", "too_large"
        )
    project_id = project.id

    def register() -> Dataset:
        with tempfile.TemporaryDirectory(prefix="ctrlgenaug-dataset-") as folder:
            manifest = extract_dataset_archive(archive, Path(folder), max_bytes * 16)
            with unit_of_work(session, state.object_store) as staged:
                return register_dataset(
                    session,
                    staged,
                    project_id=project_id,
                    name=name,
                    manifest_path=manifest,
                    extract_motion=state.extract_motion,
                    bounds=ClipBounds(
                        max_frames=state.settings.condition_max_frames,
                        max_side=state.settings.condition_max_side,
                        max_file_bytes=max_bytes,
                    ),
                )

    try:
        dataset = await run_in_threadpool(register)
    except zipfile.BadZipFile as exc:
        raise field_error(422, ["body", "file"], f"not a ZIP archive ({exc})") from exc
    except ValueError as exc:
        field = "name" if str(exc).startswith("name:") else "file"
        raise field_error(422, ["body", field], str(exc)) from exc
    return dataset_out(dataset)


@router.get("", response_model=list[DatasetOut])
def list_datasets(session: SessionDep, project: ProjectDep) -> list[DatasetOut]:
    """The project's registered datasets (their training clips condition `banks_from` jobs)."""
    rows = session.scalars(select(Dataset).where(Dataset.project_id == project.id).order_by(Dataset.name))
    return [dataset_out(row) for row in rows]
