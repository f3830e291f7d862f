"""Uploading condition assets: formats, content addressing, motion fields, harmless file names."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import service_files as files
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from generator.motion import extract_motion_field
from ingest.build import BuildSettings, build_dataset
from ingest.manifest import load_clip, load_manifest
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


def _dicom(path: Path, stack: np.ndarray) -> Path:
    """A multi-frame MONOCHROME1 DICOM of `stack` (F, H, W) (higher values display darker)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.set_pixel_data(stack, "MONOCHROME1", 16)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_upload_and_data_build_read_the_same_first_frame(
    client: TestClient,
    headers: dict[str, str],
    s3_store: S3ObjectStore,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    """One reader layer: an image prior uploaded from a NIfTI or a DICOM is the first frame `data build`
    makes of the same file (orientation and MONOCHROME1 included; two-valued pixels, so the build's
    percentile window and the upload's min-max scaling agree)."""
    volume = np.zeros((16, 16, 8), np.int16)  # NIfTI (x, y, z), identity affine: RAS
    volume[1:5, 2:12] = 100  # an L-shape: any flip or transpose shows
    volume[1:12, 2:5] = 100
    stack = np.zeros((8, 16, 16), np.uint16)  # DICOM (frames, rows, columns)
    stack[:, 1:5, 2:12] = 100
    stack[:, 1:12, 2:5] = 100
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    nib.save(nib.Nifti1Image(volume, np.eye(4)), inputs / "vol.nii")
    _dicom(inputs / "cine.dcm", stack)
    labels = tmp_path / "labels.csv"
    labels.write_text("source,class,patient_id\nvol.nii,A,P1\ncine.dcm,B,P2\n")
    build_dataset(
        [inputs], labels, tmp_path / "build", BuildSettings(size=16, motion=False, test_fraction=0.0)
    )
    records = load_manifest(tmp_path / "build" / "manifest.jsonl")
    built = {record.class_name: load_clip(tmp_path / "build", record)[0] for record in records}
    for name, class_name in (("vol.nii", "A"), ("cine.dcm", "B")):
        body = post(client, headers, (inputs / name).read_bytes(), "image_prior", name)
        with sessions() as session:
            prior = load_image_prior(s3_store, session.get_one(Asset, body["id"]))
        np.testing.assert_array_equal(prior, built[class_name], err_msg=name)
