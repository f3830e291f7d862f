"""The job's database: streamed ZIP with manifest.csv + croissant.json, download, verify (and tamper)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import shutil
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_files import CPU_EXECUTION, GPU_EXECUTION, write_clips_as_the_worker_does
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cli.main import app as cli_app
from store.export import export_database, kept_clips, verify_database_zip
from store.models import Job
from store.objects import S3ObjectStore


@pytest.fixture
def exported(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
) -> tuple[dict[str, str], str]:
    headers = make_key("export")
    body = {
        "model": tiny_model,
        "banks": [{"class_label": "class_0", "samples": 3}, {"text": "t", "samples": 2}],
    }
    job_id = client.post("/v1/jobs", headers=headers, json=body).json()["id"]
    write_clips_as_the_worker_does(sessions, s3_store, job_id, [True, False, True, True, False], resumed_at=3)
    with sessions() as session:
        export_database(session, s3_store, session.get_one(Job, uuid.UUID(job_id)))
        session.commit()
    return headers, job_id


def download(client: TestClient, headers: dict[str, str], job_id: str, path: Path) -> Path:
    response = client.get(f"/v1/jobs/{job_id}/database", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    path.write_bytes(response.content)
    return path


def test_zip_holds_kept_clips_manifest_and_croissant(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    path = download(client, headers, job_id, tmp_path / "db.zip")
    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        croissant = json.loads(archive.read("croissant.json"))
    assert names == [
        "clips/bank-0000/clip-0000.npz",
        "clips/bank-0000/clip-0002.npz",
        "clips/bank-0001/clip-0000.npz",
        "croissant.json",
        "manifest.csv",
        "previews/bank-0000/clip-0000.gif",
        "previews/bank-0000/clip-0002.gif",
        "previews/bank-0001/clip-0000.gif",
    ]
    assert [(r["class"], r["bank"], r["index_in_bank"]) for r in rows] == [
        ("class_0", "0", "0"),
        ("class_0", "0", "2"),
        ("", "1", "0"),
    ]
    assert croissant["@type"] == "sc:Dataset"
    assert croissant["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert croissant["@context"]["cr"] == "http://mlcommons.org/croissant/"
    assert croissant["ctrlgenaug:filterSettings"]["similarity_threshold"] == 0.98
    assert croissant["ctrlgenaug:consistencyBand"] == [0.8, 0.95]
    # kept clips 0 and 2 sampled on the CPU worker, clip 3 after the job moved to a GPU worker
    assert croissant["ctrlgenaug:executions"] == [CPU_EXECUTION, GPU_EXECUTION]
    records = croissant["recordSet"][0]["data"]
    assert [r["clips/sha256"] for r in records] == [r["sha256"] for r in rows]
    assert verify_database_zip(path).ok


def test_verify_detects_a_modified_file(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    original = download(client, headers, job_id, tmp_path / "db.zip")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "clips/bank-0000/clip-0002.npz":
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(info, data)
    report = verify_database_zip(tampered)
    assert not report.ok
    assert len(report.errors) == 1
    assert report.errors[0].startswith("clips/bank-0000/clip-0002.npz: SHA-256 ")
    assert "does not match the manifest's" in report.errors[0]
    result = CliRunner().invoke(cli_app, ["verify", str(tampered)])
    assert result.exit_code == 1 and "clip-0002.npz" in result.output


def test_verify_against_the_service_provenance(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    path = download(client, headers, job_id, tmp_path / "db.zip")

    def lookup(clip_id: str) -> dict | None:  # type: ignore[type-arg]
        response = client.get(f"/v1/clips/{clip_id}", headers=headers)
        return response.json()["provenance"] if response.status_code == 200 else None

    report = verify_database_zip(path, lookup)
    assert report.ok and (report.files_checked, report.previews_checked) == (3, 3)
    assert not verify_database_zip(path, lambda clip_id: None).ok


def test_presigned_database_url_downloads_the_same_bytes(
    client: TestClient, exported: tuple[dict[str, str], str]
) -> None:
    headers, job_id = exported
    streamed = client.get(f"/v1/jobs/{job_id}/database", headers=headers).content
    link = client.get(f"/v1/jobs/{job_id}/database", headers=headers, params={"presigned": 1}).json()
    assert link["size_bytes"] == len(streamed) and link["expires_in"] == 3600
    assert httpx.get(link["url"]).content == streamed


def test_clip_provenance_and_clip_pages(client: TestClient, exported: tuple[dict[str, str], str]) -> None:
    headers, job_id = exported
    first = client.get(f"/v1/jobs/{job_id}/clips", headers=headers, params={"limit": 3}).json()
    rest = client.get(
        f"/v1/jobs/{job_id}/clips", headers=headers, params={"cursor": first["next_cursor"]}
    ).json()
    clips = first["items"] + rest["items"]
    assert [(c["bank_index"], c["index_in_bank"]) for c in clips] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert rest["next_cursor"] is None
    dropped = client.get(f"/v1/jobs/{job_id}/clips", headers=headers, params={"kept": False}).json()["items"]
    assert [(c["reason"], c["kept"]) for c in dropped] == [("duplicate", False), ("duplicate", False)]
    detail = client.get(f"/v1/clips/{clips[0]['id']}", headers=headers).json()
    provenance = detail["provenance"]
    assert provenance["model"]["name"] == "tiny-ctrlgenaug" and len(provenance["model"]["checksum"]) == 64
    assert provenance["conditions"]["class_label"] == {"name": "class_0", "index": 0}
    assert provenance["conditions"]["image_prior"] is None
    assert provenance["seed"] == clips[0]["seed"]
    assert provenance["sampler"]["name"] == "ddim" and provenance["filter"]["band"] == [0.8, 0.95]
    assert provenance["clip"]["sha256"] == clips[0]["sha256"]
    assert httpx.get(detail["preview_url"]).content.startswith(b"GIF89a")
    assert httpx.get(detail["download_url"]).status_code == 200


def test_database_before_export_is_a_conflict(
    client: TestClient, make_key: Callable[[str], dict[str, str]], tiny_model: str
) -> None:
    headers = make_key("early")
    job_id = client.post(
        "/v1/jobs", headers=headers, json={"model": tiny_model, "banks": [{"samples": 1}]}
    ).json()["id"]
    response = client.get(f"/v1/jobs/{job_id}/database", headers=headers)
    assert (
        response.status_code == 409
        and "not exported yet (job is queued)" in response.json()["detail"][0]["msg"]
    )


def rezipped(original: Path, out: Path, replace: dict[str, bytes], add: dict[str, bytes]) -> Path:
    """A copy of the database ZIP with members replaced and entries added (names kept as given)."""
    with zipfile.ZipFile(original) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, replace.get(info.filename, src.read(info)))
        for name, data in add.items():
            dst.writestr(name, data)
    return out


def test_manifest_hashes_every_preview(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    path = download(client, headers, job_id, tmp_path / "db.zip")
    with zipfile.ZipFile(path) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        previews = {row["preview"]: hashlib.sha256(archive.read(row["preview"])).hexdigest() for row in rows}
        records = json.loads(archive.read("croissant.json"))["recordSet"][0]["data"]
    assert [row["preview_sha256"] for row in rows] == list(previews.values())
    assert [r["clips/preview_sha256"] for r in records] == list(previews.values())
    result = CliRunner().invoke(cli_app, ["verify", str(path)])
    assert result.exit_code == 0 and "OK 3 files verified, 3 previews hashed" in result.output


@pytest.mark.parametrize(
    ("added", "error"),
    [
        ("../x", "../x: absolute or '..' path in the archive"),
        ("/tmp/x", "/tmp/x: absolute or '..' path in the archive"),
        ("clips/../../x", "clips/../../x: absolute or '..' path in the archive"),
        ("notes.txt", "notes.txt: in the archive but not in manifest.csv"),
        (
            "clips/bank-0000/clip-0009.npz",
            "clips/bank-0000/clip-0009.npz: in the archive but not in manifest.csv",
        ),
        ("extra/deep/x.bin", "extra/deep/x.bin: in the archive but not in manifest.csv"),
    ],
)
def test_verify_fails_an_added_entry(
    added: str, error: str, client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    original = download(client, headers, job_id, tmp_path / "db.zip")
    tampered = rezipped(original, tmp_path / "tampered.zip", {}, {added: b"planted"})
    assert verify_database_zip(tampered).errors == [error]
    result = CliRunner().invoke(cli_app, ["verify", str(tampered)])
    assert result.exit_code == 1 and f"FAIL {error}" in result.output


def test_verify_fails_a_replaced_preview(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    original = download(client, headers, job_id, tmp_path / "db.zip")
    preview = "previews/bank-0000/clip-0002.gif"
    tampered = rezipped(original, tmp_path / "tampered.zip", {preview: b"GIF89a-replaced"}, {})
    errors = verify_database_zip(tampered).errors
    assert len(errors) == 1 and errors[0].startswith(f"{preview}: SHA-256 "), errors


def test_verify_fails_a_second_entry_of_the_same_name(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    original = download(client, headers, job_id, tmp_path / "db.zip")
    preview = "previews/bank-0001/clip-0000.gif"
    with pytest.warns(UserWarning, match="Duplicate name"):
        tampered = rezipped(original, tmp_path / "tampered.zip", {}, {preview: b"GIF89a-shadow"})
    assert verify_database_zip(tampered).errors == [f"{preview}: in the archive more than once"]


def test_verify_accepts_a_database_unzipped_and_zipped_again(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """Zipping the unpacked folder adds folder entries ("clips/", ...); zipping the folder itself also puts
    everything under one top-level folder. Both verify; a file the manifest does not list still fails."""
    headers, job_id = exported
    original = download(client, headers, job_id, tmp_path / "db.zip")
    unpacked = tmp_path / "unpacked" / "db"
    shutil.unpack_archive(original, unpacked)
    contents = Path(shutil.make_archive(str(tmp_path / "contents"), "zip", root_dir=unpacked))
    wrapped = Path(
        shutil.make_archive(str(tmp_path / "wrapped"), "zip", root_dir=unpacked.parent, base_dir="db")
    )
    with zipfile.ZipFile(contents) as archive:
        assert {"clips/", "clips/bank-0000/", "previews/"} <= set(archive.namelist())
    with zipfile.ZipFile(wrapped) as archive:
        assert {"db/", "db/manifest.csv"} <= set(archive.namelist())
    for rezip in (contents, wrapped):
        report = verify_database_zip(rezip)
        assert report.ok and (report.files_checked, report.previews_checked) == (3, 3), report.errors
    (unpacked / "clips" / "notes.txt").write_bytes(b"planted")
    planted = Path(
        shutil.make_archive(str(tmp_path / "planted"), "zip", root_dir=unpacked.parent, base_dir="db")
    )
    assert verify_database_zip(planted).errors == [
        "db/clips/notes.txt: in the archive but not in manifest.csv"
    ]


def test_database_download_resumes_from_a_range(
    client: TestClient, exported: tuple[dict[str, str], str]
) -> None:
    headers, job_id = exported
    url = f"/v1/jobs/{job_id}/database"
    whole = client.get(url, headers=headers)
    assert whole.headers["accept-ranges"] == "bytes"
    size = len(whole.content)
    rest = client.get(url, headers={**headers, "Range": "bytes=100-"})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes 100-{size - 1}/{size}"
    assert rest.headers["x-content-sha256"] == hashlib.sha256(whole.content).hexdigest()
    assert whole.content[:100] + rest.content == whole.content
    assert client.get(url, headers={**headers, "Range": "bytes=-10"}).content == whole.content[-10:]
    past = client.get(url, headers={**headers, "Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert past.json()["detail"][0]["loc"] == ["header", "Range"]
    two = client.get(url, headers={**headers, "Range": "bytes=0-1,5-9"})
    assert two.status_code == 416
    assert two.json()["detail"][0]["msg"] == "give one byte range, like bytes=1000-"


def test_nifti_database_holds_each_clip_frames_last_and_verifies_against_the_service(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    import nibabel as nib

    headers, job_id = exported
    npz = download(client, headers, job_id, tmp_path / "db.zip")
    response = client.get(f"/v1/jobs/{job_id}/database", headers=headers, params={"format": "nifti"})
    assert response.status_code == 200, response.text
    assert f"ctrlgenaug-{job_id}-nifti.zip" in response.headers["content-disposition"]
    nifti = tmp_path / "nifti.zip"
    nifti.write_bytes(response.content)
    again = client.get(f"/v1/jobs/{job_id}/database", headers=headers, params={"format": "nifti"})
    assert again.content == response.content  # converted once, kept beside the NPZ database
    with zipfile.ZipFile(npz) as a, zipfile.ZipFile(nifti) as b:
        assert sorted(n for n in b.namelist() if n.startswith("clips/")) == [
            "clips/bank-0000/clip-0000.nii.gz",
            "clips/bank-0000/clip-0002.nii.gz",
            "clips/bank-0001/clip-0000.nii.gz",
        ]
        with np.load(io.BytesIO(a.read("clips/bank-0000/clip-0002.npz"))) as clip:
            frames = clip["frames"]
        image = nib.Nifti1Image.from_bytes(gzip.decompress(b.read("clips/bank-0000/clip-0002.nii.gz")))
        rows = list(csv.DictReader(io.StringIO(b.read("manifest.csv").decode())))
        croissant = json.loads(b.read("croissant.json"))
    assert image.shape == (frames.shape[1], frames.shape[2], frames.shape[0])
    assert np.array_equal(np.asarray(image.dataobj).transpose(2, 0, 1), frames)
    assert image.get_data_dtype() == np.uint8
    assert [r["path"] for r in rows][1] == "clips/bank-0000/clip-0002.nii.gz"
    assert croissant["distribution"][1]["includes"] == "clips/*/*.nii.gz"

    def lookup(clip_id: str) -> dict | None:  # type: ignore[type-arg]
        response = client.get(f"/v1/clips/{clip_id}", headers=headers)
        return response.json()["provenance"] if response.status_code == 200 else None

    report = verify_database_zip(nifti, lookup)
    assert report.ok, report.errors
    assert report.files_checked == 3


def test_unknown_database_format_is_a_422_naming_format(
    client: TestClient, exported: tuple[dict[str, str], str]
) -> None:
    headers, job_id = exported
    response = client.get(f"/v1/jobs/{job_id}/database", headers=headers, params={"format": "dicom"})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "format"]
    assert error["msg"] == "Input should be 'npz' or 'nifti'"


def test_manifest_source_columns_are_empty_for_banks_given_by_hand(
    client: TestClient, exported: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    headers, job_id = exported
    with zipfile.ZipFile(download(client, headers, job_id, tmp_path / "db.zip")) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert [(r["source_clip_id"], r["source_patient_id"]) for r in rows] == [("", "")] * 3


def test_manifest_and_croissant_carry_the_reference_checks(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    tiny_model: str,
    sessions: sessionmaker[Session],
    s3_store: S3ObjectStore,
    tmp_path: Path,
) -> None:
    headers = make_key("export-checks")
    body = {"model": tiny_model, "banks": [{"class_label": "class_0", "samples": 2}]}
    job_id = client.post("/v1/jobs", headers=headers, json=body).json()["id"]
    write_clips_as_the_worker_does(sessions, s3_store, job_id, [True, True], resumed_at=2)
    checks = {
        "dataset": "build",
        "manifest_sha256": "ab" * 32,
        "training_clips": 37,
        "memorised_threshold": 0.14,
        "threshold_source": "job settings",
        "feature_space": "spectrum rings",
    }
    with sessions() as session:
        job = session.get_one(Job, uuid.UUID(job_id))
        job.filter_settings = {**job.filter_settings, "memorised": True, "off_manifold": False}
        job.filter_checks = checks
        published = job.created_at.date().isoformat()
        clips = kept_clips(session, job)
        for clip, distance in zip(clips, (0.31, 0.52), strict=True):
            clip.real_distance, clip.real_clip, clip.memorised = distance, "c00", False
        export_database(session, s3_store, job)
        session.commit()
    path = download(client, headers, job_id, tmp_path / "db.zip")
    with zipfile.ZipFile(path) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
        croissant = json.loads(archive.read("croissant.json"))
    assert [(r["real_distance"], r["memorised"], r["off_manifold"]) for r in rows] == [
        ("0.31", "false", ""),
        ("0.52", "false", ""),
    ]
    assert "c00" not in archive_text(path)  # the nearest real clip is for the auditor's provenance only
    fields = {f["name"]: f["dataType"] for f in croissant["recordSet"][0]["field"]}
    assert (fields["real_distance"], fields["memorised"]) == ("sc:Float", "sc:Boolean")
    applied = croissant["ctrlgenaug:referenceChecks"]
    assert applied["memorised"]["applied"] is True and applied["memorised"]["threshold"] == 0.14
    assert applied["offManifold"]["applied"] is False
    assert applied["dataBuild"]["manifestSha256"] == "ab" * 32
    assert f"manifest SHA-256 {'ab' * 32}" in croissant["license"]
    assert croissant["datePublished"] == published
    assert croissant["citeAs"].startswith(f"@misc{{ctrlgenaug_job_{uuid.UUID(job_id).hex[:12]},")
    assert verify_database_zip(path).ok


def archive_text(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return "".join(archive.read(n).decode(errors="replace") for n in ("manifest.csv", "croissant.json"))
