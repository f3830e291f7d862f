"""Content-addressed condition assets: the uploaded bytes plus the decoded array as `.npy`."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.audit import append_event
from store.models import Asset, AssetKind, utcnow
from store.objects import ObjectStore
from store.unit_of_work import StagedObjects


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def asset_object_keys(project_id: uuid.UUID, kind: AssetKind, sha256: str) -> tuple[str, str]:
    base = f"projects/{project_id}/assets/{kind.value}/{sha256}"
    return f"{base}/original", f"{base}/array.npy"


ASSET_IDENTITY = ("project_id", "kind", "sha256")


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def find_asset(session: Session, project_id: uuid.UUID, kind: AssetKind, sha256: str) -> Asset | None:
    return session.scalar(
        select(Asset).where(Asset.project_id == project_id, Asset.kind == kind, Asset.sha256 == sha256)
    )


@dataclass(frozen=True)
class AssetObjects:
    """A validated asset whose objects are written: what its row records."""

    kind: AssetKind
    sha256: str
    media_type: str
    filename: str
    shape: tuple[int, ...]
    size_bytes: int
    object_key: str
    array_key: str


def write_asset_objects(
    staged: StagedObjects,
    *,
    project_id: uuid.UUID,
    kind: AssetKind,
    original: bytes,
    media_type: str,
    filename: str,
    array: np.ndarray,
) -> AssetObjects:
    """Write a validated asset's objects (the original and the array), touching no database row."""
    sha256 = hashlib.sha256(original).hexdigest()
    object_key, array_key = asset_object_keys(project_id, kind, sha256)
    staged.put(object_key, original, content_type=media_type)
    staged.put(array_key, npy_bytes(array), content_type="application/x-npy")
    return AssetObjects(
        kind=kind,
        sha256=sha256,
        media_type=media_type,
        filename=filename,
        shape=tuple(array.shape),
        size_bytes=len(original),
        object_key=object_key,
        array_key=array_key,
    )


def add_asset_row(
    session: Session, staged: StagedObjects, project_id: uuid.UUID, objects: AssetObjects
) -> Asset:
    """Add the row of an asset whose objects are written (commit through `unit_of_work`); the same bytes
    already registered in the project give back the existing asset."""
    existing = find_asset(session, project_id, objects.kind, objects.sha256)
    if existing is not None:
        return existing
    inserted = session.execute(
        _insert(session)(Asset)
        .values(
            id=uuid.uuid4(),
            project_id=project_id,
            kind=objects.kind,
            sha256=objects.sha256,
            media_type=objects.media_type,
            filename=objects.filename,
            shape=list(objects.shape),
            size_bytes=objects.size_bytes,
            object_key=objects.object_key,
            array_object_key=objects.array_key,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=ASSET_IDENTITY)
        .returning(Asset.id)
    ).scalar_one_or_none()
    asset = find_asset(session, project_id, objects.kind, objects.sha256)
    assert asset is not None
    if inserted is None:
        # a concurrent upload of the same bytes committed the row first; its objects are these, byte for byte
        staged.keep(objects.object_key, objects.array_key)
    else:
        append_event(
            session,
            project_id,
            "asset.created",
            {"asset_id": str(asset.id), "kind": objects.kind.value, "sha256": objects.sha256},
        )
    return asset


def stage_asset(
    session: Session,
    staged: StagedObjects,
    *,
    project_id: uuid.UUID,
    kind: AssetKind,
    original: bytes,
    media_type: str,
    filename: str,
    array: np.ndarray,
) -> Asset:
    """Write a validated asset's objects and add its row (commit through `unit_of_work`).

    The same bytes uploaded again to the same project give back the existing asset.
    """
    existing = find_asset(session, project_id, kind, hashlib.sha256(original).hexdigest())
    if existing is not None:
        return existing
    objects = write_asset_objects(
        staged,
        project_id=project_id,
        kind=kind,
        original=original,
        media_type=media_type,
        filename=filename,
        array=array,
    )
    return add_asset_row(session, staged, project_id, objects)


def load_image_prior(store: ObjectStore, asset: Asset) -> np.ndarray:
    """The image prior as uint8 (H, W)."""
    if asset.kind != AssetKind.image_prior:
        raise ValueError(f"image_prior_asset: asset {asset.id} is a {asset.kind.value}")
    return load_npy(store.get(asset.array_object_key))


def load_motion_field(store: ObjectStore, asset: Asset) -> np.ndarray:
    """The reference clip's motion field as float32 (F, 2, H, W)."""
    if asset.kind != AssetKind.reference_clip:
        raise ValueError(f"motion_asset: asset {asset.id} is a {asset.kind.value}")
    return load_npy(store.get(asset.array_object_key))
