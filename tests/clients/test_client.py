"""The Python client, sync and async, against a live embedded service."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_service import TINY_SAMPLER, LiveService

from api.schemas import ClipOut, JobOut
from client import ApiError, AsyncClient, Client, DownloadError, MissingSetting


def banks_job(live: LiveService, samples: int = 1) -> dict[str, Any]:
    return {
        "model": live.model,
        "banks": [{"class_label": "class_1", "samples": samples}],
        "sampler": TINY_SAMPLER,
    }


def manifest_rows(database: Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(database) as archive:
        return list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))


def test_submit_sends_an_idempotency_key_a_replay_returns_the_same_job(live: LiveService) -> None:
    key = f"test-{uuid.uuid4()}"
    with Client(live.url, live.key) as client:
        first = client.submit(banks_job(live, samples=50), idempotency_key=key)
        again = client.submit(banks_job(live, samples=50), idempotency_key=key)
        with pytest.raises(ApiError) as conflict:
            client.submit(banks_job(live, samples=2), idempotency_key=key)
        cancelled = client.cancel(str(first.id))
        final = client.wait(str(first.id), poll_s=0.5, timeout_s=300, progress=False)
    assert isinstance(first, JobOut) and again.id == first.id
    assert first.progress.clips_total == 50
    assert conflict.value.status_code == 409
    assert conflict.value.field == "Idempotency-Key"
    assert (
        str(conflict.value) == "Idempotency-Key: this Idempotency-Key was used with a different request body"
    )
    assert cancelled.cancel_requested
    assert final.status.value == "cancelled"


def test_url_and_key_come_from_the_environment(live: LiveService, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingSetting, match="^CTRLGENAUG_URL: not set"):
        Client()
    monkeypatch.setenv("CTRLGENAUG_URL", live.url + "/")
    with pytest.raises(MissingSetting, match="^CTRLGENAUG_API_KEY: not set"):
        Client()
    monkeypatch.setenv("CTRLGENAUG_API_KEY", live.key)
    with Client() as client:
        assert client.url == live.url
        assert [m.name for m in client.models()] == [live.model]


def test_errors_name_the_field_of_the_apis_error_body(
    live: LiveService, finished_job: str, tmp_path: Path
) -> None:
    with Client(live.url, "cga_not-a-key") as client, pytest.raises(ApiError) as unauthorized:
        client.job(finished_job)
    assert (unauthorized.value.status_code, unauthorized.value.field) == (401, "Authorization")
    assert str(unauthorized.value) == "Authorization: invalid or revoked API key"
    with Client(live.url, live.key) as client:
        with pytest.raises(ApiError) as missing:
            client.job(str(uuid.uuid4()))
        with pytest.raises(ApiError) as bad_format:
            client.download_database(finished_job, tmp_path, clip_format="dicom", progress=False)
        with pytest.raises(ApiError) as bad_bank:
            client.submit(
                {**banks_job(live), "banks_from": None, "banks": [{"class_label": "nope", "samples": 1}]}
            )
    assert (missing.value.status_code, str(missing.value)) == (404, "job_id: job not found")
    assert (bad_format.value.status_code, bad_format.value.field) == (422, "format")
    assert str(bad_format.value) == "format: Input should be 'npz' or 'nifti'"
    assert (bad_bank.value.status_code, bad_bank.value.field) == (422, "banks.0.class_label")
    assert not list(tmp_path.iterdir())  # a refused download leaves no partial file


def test_wait_clips_download_resume_and_verify(live: LiveService, finished_job: str, tmp_path: Path) -> None:
    with Client(live.url, live.key) as client:
        job = client.wait(finished_job, progress=False)
        every = list(client.clips(finished_job, page_size=4))
        kept = list(client.clips(finished_job, kept=True))
        downloaded = client.download_database(finished_job, tmp_path, progress=False)
        report = client.verify(downloaded.path)

        whole = downloaded.path.read_bytes()
        partial = downloaded.path.with_name(downloaded.path.name + ".part")
        partial.write_bytes(whole[:1000])
        downloaded.path.unlink()
        resumed = client.download_database(finished_job, tmp_path, progress=False)
        resumed_bytes = resumed.path.read_bytes()

        partial.write_bytes(b"x" * 1000)
        resumed.path.unlink()
        with pytest.raises(DownloadError, match="differs from the service's"):
            client.download_database(finished_job, tmp_path, progress=False)
        assert not partial.exists()
    assert len(every) == job.progress.clips_total == 12 and all(isinstance(c, ClipOut) for c in every)
    assert len({c.id for c in every}) == 12
    assert [c.id for c in kept] == [c.id for c in every if c.kept]
    assert len(kept) == job.results.clips_kept
    assert downloaded.resumed_from == 0 and downloaded.path.name == f"ctrlgenaug-{finished_job}.zip"
    assert report.ok and report.files_checked == len(kept)
    assert resumed.resumed_from == 1000 and resumed_bytes == whole
    assert resumed.sha256 == downloaded.sha256


def test_manifest_names_each_clips_source_clip_and_patient(
    live: LiveService, finished_job: str, tmp_path: Path
) -> None:
    with Client(live.url, live.key) as client:
        database = client.download_database(finished_job, tmp_path, progress=False).path
    rows = manifest_rows(database)
    assert rows
    for row in rows:
        assert row["source_clip_id"] in live.patients
        assert row["source_patient_id"] == live.patients[row["source_clip_id"]]


def test_async_client_waits_downloads_nifti_and_verifies(
    live: LiveService, finished_job: str, tmp_path: Path
) -> None:
    async def run() -> tuple[JobOut, list[ClipOut], Any, Any]:
        async with AsyncClient(live.url, live.key) as client:
            job = await client.wait(finished_job, progress=False)
            kept = [clip async for clip in client.clips(finished_job, kept=True, page_size=2)]
            downloaded = await client.download_database(
                finished_job, tmp_path, clip_format="nifti", progress=False
            )
            return job, kept, downloaded, await client.verify(downloaded.path)

    job, kept, downloaded, report = asyncio.run(run())
    assert len(kept) == job.results.clips_kept
    assert downloaded.path.name == f"ctrlgenaug-{finished_job}-nifti.zip"
    assert report.ok, report.errors
    assert report.files_checked == len(kept)
    rows = manifest_rows(downloaded.path)
    with zipfile.ZipFile(downloaded.path) as archive:
        first = archive.read(rows[0]["path"])
    import nibabel as nib

    image = nib.Nifti1Image.from_bytes(gzip.decompress(first))
    assert image.shape == (32, 32, 8)  # the tiny model's 8 frames of 32×32, frames last
    assert np.asarray(image.dataobj).dtype == np.uint8
