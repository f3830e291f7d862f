"""Uploading condition assets: formats, content addressing, motion fields, harmless file names."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest
import service_files as files
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from generator.motion import extract_motion_field
from store.assets import load_image_prior, load_motion_field
from store.models import Asset
from store.objects import S3ObjectStore


@pytest.fixture
def headers(client: TestClient, make_key: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return make_key("assets")


def post(client: TestClient, headers: dict[str, str], data: bytes, kind: str, name: str = "x") -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/assets", headers=headers, files={"file": (name, data)}, data={"kind": kind})
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_png_prior_is_content_addressed(
    client: TestClient, headers: dict[str, str], s3_store: S3ObjectStore, sessions: sessionmaker[Session]
) -> None:
    data = files.png(24, 40)
    first = client.post(
        "/v1/assets", headers=headers, files={"file": ("a.png", data)}, data={"kind": "image_prior"}
    )
    again = client.post(
        "/v1/assets", headers=headers, files={"file": ("b.png", data)}, data={"kind": "image_prior"}
    )
    assert (first.status_code, again.status_code) == (201, 200)
    body = first.json()
    assert again.json()["id"] == body["id"]
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert (body["kind"], body["media_type"], body["shape"]) == ("image_prior", "image/png", [24, 40])
    with sessions() as session:
        asset = session.get_one(Asset, body["id"])
        assert s3_store.get(asset.object_key) == data
        assert load_image_prior(s3_store, asset).shape == (24, 40)
    assert len([i for i in s3_store.list() if body["sha256"] in i.key]) == 2


def test_reference_clip_npz_gets_a_motion_field(
    client: TestClient, headers: dict[str, str], s3_store: S3ObjectStore, sessions: sessionmaker[Session]
) -> None:
    body = post(client, headers, files.clip_npz(8, 32), "reference_clip", "clip.npz")
    assert body["shape"] == [8, 2, 32, 32]
    with sessions() as session:
        field = load_motion_field(s3_store, session.get_one(Asset, body["id"]))
    assert field.dtype == np.float32
    np.testing.assert_array_equal(field, extract_motion_field(files.moving_square_frames(8, 32)))
    assert np.abs(field[1:]).max() > 0


def test_multiframe_dicom_clip_and_nifti_prior(client: TestClient, headers: dict[str, str]) -> None:
    clip = post(client, headers, files.dicom_bytes("emri_small.dcm"), "reference_clip", "emri.dcm")
    assert (clip["media_type"], clip["shape"]) == ("application/dicom", [10, 2, 64, 64])
    prior = post(client, headers, files.nifti((32, 24, 5)), "image_prior", "vol.nii")
    assert (prior["media_type"], prior["shape"]) == ("application/x-nifti", [24, 32])
    ct = post(client, headers, files.dicom_bytes(), "image_prior", "ct.dcm")
    assert ct["shape"] == [128, 128]


def test_path_traversal_file_name_is_harmless(
    client: TestClient, headers: dict[str, str], s3_store: S3ObjectStore
) -> None:
    body = post(client, headers, files.png(seed=3), "image_prior", "../../../etc/pass wd;rm -rf.png")
    assert body["filename"] == "pass wd_rm -rf.png"
    assert all(".." not in info.key and "etc" not in info.key for info in s3_store.list())


def test_same_bytes_in_another_project_are_another_asset(
    client: TestClient, make_key: Callable[[str], dict[str, str]]
) -> None:
    data = files.png(seed=5)
    a = post(client, make_key("p1"), data, "image_prior")
    b = post(client, make_key("p2"), data, "image_prior")
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"]
