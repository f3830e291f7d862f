"""Content-addressed condition assets: the uploaded bytes plus the decoded array as `.npy`."""

from __future__ import annotations

import hashlib
import io
import uuid

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
    sha256 = hashlib.sha256(original).hexdigest()
    existing = find_asset(session, project_id, kind, sha256)
    if existing is not None:
        return existing
    object_key, array_key = asset_object_keys(project_id, kind, sha256)
    staged.put(object_key, original, content_type=media_type)
    staged.put(array_key, npy_bytes(array), content_type="application/x-npy")
    inserted = session.execute(
        _insert(session)(Asset)
        .values(
            id=uuid.uuid4(),
            project_id=project_id,
            kind=kind,
            sha256=sha256,
            media_type=media_type,
            filename=filename,
            shape=list(array.shape),
            size_bytes=len(original),
            object_key=object_key,
            array_object_key=array_key,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=ASSET_IDENTITY)
        .returning(Asset.id)
    ).scalar_one_or_none()
    asset = find_asset(session, project_id, kind, sha256)
    assert asset is not None
    if inserted is None:
        # a concurrent upload of the same bytes committed the row first; its objects are these, byte for byte
        staged.keep(object_key, array_key)
    else:
        append_event(
            session,
            project_id,
            "asset.created",
            {"asset_id": str(asset.id), "kind": kind.value, "sha256": sha256},
        )
    return asset


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
