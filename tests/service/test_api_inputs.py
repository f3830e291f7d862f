"""Every bad input → a 4xx naming the field, and nothing left behind (no rows, no objects)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import service_files as files
from fastapi.testclient import TestClient
from service_files import bucket_keys, row_counts
from sqlalchemy.orm import Session, sessionmaker

from store.objects import S3ObjectStore


def upload(client: TestClient, headers: dict[str, str], data: bytes, kind: str, name: str = "f.bin") -> Any:
    return client.post("/v1/assets", headers=headers, files={"file": (name, data)}, data={"kind": kind})


def assert_field_error(response: Any, status: int, loc: list[Any], fragment: str) -> None:
    assert response.status_code == status, response.text
    errors = response.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and fragment in e["msg"] for e in errors), errors


@pytest.fixture
def headers(client: TestClient, make_key: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return make_key("inputs")


@pytest.fixture
def nothing_left(
    client: TestClient, headers: dict[str, str], sessions: sessionmaker[Session], s3_store: S3ObjectStore
):  # type: ignore[no-untyped-def]
    before = (row_counts(sessions), bucket_keys(s3_store))
    yield
    assert (row_counts(sessions), bucket_keys(s3_store)) == before


BAD_UPLOADS = {
    "oversized": (
        lambda: files.png(600, 600, seed=1) + bytes(300 * 1024),
        "image_prior",
        413,
        "exceeds the limit",
    ),
    "decompression bomb": (files.decompression_bomb_png, "image_prior", 413, "bomb"),
    "truncated dicom": (files.truncated_dicom, "reference_clip", 422, "truncated DICOM"),
    "lying nifti": (
        files.nifti_with_lying_header,
        "reference_clip",
        422,
        "NIfTI header declares shape (64, 64, 64)",
    ),
    "pickled npy": (files.pickled_npy, "image_prior", 422, "pickled"),
    "png as clip": (files.png, "reference_clip", 422, "must be a sequence"),
    "not a medical file": (lambda: b"%PDF-1.7 hello", "image_prior", 422, "unrecognised format"),
    "truncated png": (lambda: files.png()[:200], "image_prior", 422, "truncated or corrupt image"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_uploads_are_refused_without_trace(
    case: str, client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    make, kind, status, fragment = BAD_UPLOADS[case]
    assert_field_error(upload(client, headers, make(), kind), status, ["body", "file"], fragment)


def test_oversized_upload_is_cut_off_while_streaming(
    client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    def body():  # type: ignore[no-untyped-def]
        yield b'--x\r\nContent-Disposition: form-data; name="kind"\r\n\r\nimage_prior\r\n'
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(64):
            yield bytes(16 * 1024)

    response = client.post(
        "/v1/assets", headers={**headers, "Content-Type": "multipart/form-data; boundary=x"}, content=body()
    )
    assert_field_error(response, 413, ["body", "file"], "exceeds the limit")


def test_unknown_kind_names_the_field(
    client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    assert_field_error(upload(client, headers, files.png(), "mask"), 422, ["body", "kind"], "")


def job_body(model: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "banks": [{"class_label": "class_0", "samples": 2}], "seed": 1}
    body.update(overrides)
    return body


BAD_JOBS: dict[str, tuple[Callable[[str], dict[str, Any]], list[Any], str]] = {
    "unknown model": (
        lambda m: job_body("no-such-model"),
        ["body", "model"],
        "unknown model 'no-such-model'",
    ),
    "empty bank list": (lambda m: job_body(m, banks=[]), ["body", "banks"], "at least 1"),
    "unknown class": (
        lambda m: job_body(m, banks=[{"class_label": "class_9", "samples": 1}]),
        ["body", "banks", 0, "class_label"],
        "unknown class 'class_9'",
    ),
    "steps out of range": (
        lambda m: job_body(m, sampler={"name": "ddim", "steps": 0}),
        ["body", "sampler", "steps"],
        "greater than",
    ),
    "unknown sampler": (
        lambda m: job_body(m, sampler={"name": "euler"}),
        ["body", "sampler", "name"],
        "ddim",
    ),
    "unknown guided condition": (
        lambda m: job_body(m, sampler={"name": "ddim", "guided_conditions": ["text", "mood"]}),
        ["body", "sampler", "guided_conditions", 1],
        "'image_prior'",
    ),
    "empty guided conditions": (
        lambda m: job_body(m, sampler={"name": "ddim", "guided_conditions": []}),
        ["body", "sampler", "guided_conditions"],
        "at least 1 item",
    ),
    "eta with a solver other than ddim": (
        lambda m: job_body(m, sampler={"name": "unipc", "eta": 0.5}),
        ["body", "sampler"],
        "eta applies to ddim only",
    ),
    "missing asset": (
        lambda m: job_body(
            m, banks=[{"image_prior_asset": "00000000-0000-4000-8000-000000000000", "samples": 1}]
        ),
        ["body", "banks", 0, "image_prior_asset"],
        "not found in this project",
    ),
    "zero samples": (
        lambda m: job_body(m, banks=[{"samples": 0}]),
        ["body", "banks", 0, "samples"],
        "greater than or equal to 1",
    ),
    "no bank source": (lambda m: {"model": m}, ["body"], "exactly one of banks or banks_from"),
    "unknown dataset": (
        lambda m: {"model": m, "banks_from": {"dataset": "nope", "samples_per_bank": 1}},
        ["body", "banks_from", "dataset"],
        "dataset 'nope' not found",
    ),
    "bad filter": (
        lambda m: job_body(m, filter={"kmeans_k": 2}),
        ["body", "filter", "kmeans_k"],
        "greater than or equal to 3",
    ),
    "kmeans seed past uint32": (
        lambda m: job_body(m, filter={"kmeans_seed": 2**32}),
        ["body", "filter", "kmeans_seed"],
        "less than or equal to 4294967295",
    ),
    "kmeans seed 10^40": (
        lambda m: job_body(m, filter={"kmeans_seed": 10**40}),
        ["body", "filter", "kmeans_seed"],
        "less than or equal to 4294967295",
    ),
    "negative memorised threshold": (
        lambda m: job_body(m, filter={"memorised_threshold": -0.01}),
        ["body", "filter", "memorised_threshold"],
        "greater than or equal to 0",
    ),
    "manifold k below 1": (
        lambda m: job_body(m, filter={"manifold_k": 0}),
        ["body", "filter", "manifold_k"],
        "greater than or equal to 1",
    ),
    "memorised on a model without a data build": (
        lambda m: job_body(m, filter={"memorised": True}),
        ["body", "filter", "memorised"],
        "the memorised check needs the model's real data build: model ",
    ),
    "off_manifold on a model without a data build": (
        lambda m: job_body(m, filter={"off_manifold": True}),
        ["body", "filter", "off_manifold"],
        "records no sequence-stage data_manifest_checksum",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_JOBS))
def test_bad_job_requests_are_refused_without_trace(
    case: str, client: TestClient, headers: dict[str, str], tiny_model: str, nothing_left: None, sender
) -> None:  # type: ignore[no-untyped-def]
    make, loc, fragment = BAD_JOBS[case]
    response = client.post("/v1/jobs", headers=headers, json=make(tiny_model))
    assert_field_error(response, 422, loc, fragment)
    assert sender.sent == []


def test_wrong_kind_of_asset_is_named(
    client: TestClient, headers: dict[str, str], tiny_model: str, sessions: sessionmaker[Session]
) -> None:
    prior = upload(client, headers, files.png(), "image_prior").json()
    before = row_counts(sessions)
    response = client.post(
        "/v1/jobs",
        headers=headers,
        json=job_body(tiny_model, banks=[{"motion_asset": prior["id"], "samples": 1}]),
    )
    assert_field_error(
        response, 422, ["body", "banks", 0, "motion_asset"], "is a image_prior, expected a reference_clip"
    )
    assert row_counts(sessions) == before


def test_dataset_with_a_wrong_checksum_leaves_nothing(
    client: TestClient, headers: dict[str, str], tmp_path: Path, nothing_left: None
) -> None:
    archive = files.data_build_zip(tmp_path / "build", wrong_checksum="c1a")
    response = client.post(
        "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", archive)}
    )
    assert_field_error(response, 422, ["body", "file"], "clip c1a: file SHA-256 does not match the manifest")


def test_dataset_archive_escaping_its_folder_is_refused(
    client: TestClient, headers: dict[str, str], nothing_left: None
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil.txt", b"x")
    response = client.post(
        "/v1/datasets", headers=headers, data={"name": "d"}, files={"file": ("d.zip", buffer.getvalue())}
    )
    assert_field_error(response, 422, ["body", "file"], "points outside the data folder")
