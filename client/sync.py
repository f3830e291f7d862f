"""The synchronous client (`httpx.Client`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from api.schemas import AssetOut, ClipDetail, ClipOut, JobIn, JobOut, ModelOut, Page
from client import calls, transfer
from client.calls import ModelList
from client.errors import ApiError
from client.progress import JobProgressBar
from client.settings import resolve
from store.export import VerificationReport, verify_database_zip

SUBMIT_ATTEMPTS = 3


class Client:
    """The REST API of one project (its key), as a context manager.

    Args:
        url: the service, like `http://127.0.0.1:8000` (default: CTRLGENAUG_URL).
        key: the project's API key (default: CTRLGENAUG_API_KEY).
        timeout_s: per-request timeout.
        transport: an httpx transport (default: the network).
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout_s: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url, key = resolve(url, key)
        self._http = httpx.Client(**calls.client_options(self.url, key, timeout_s), transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(self, job: JobIn | dict[str, Any], idempotency_key: str | None = None) -> JobOut:
        """Submit a job; a connection error is retried with the same Idempotency-Key, so it makes one job.

        Args:
            job: a JobIn (or its dict; validated here as the service validates it).
            idempotency_key: the key to send (default: a fresh UUID per call).
        """
        request = calls.submit_request(job, idempotency_key)
        for attempt in range(1, SUBMIT_ATTEMPTS):
            try:
                return calls.parsed(JobOut, self._http.post("/v1/jobs", **request))
            except httpx.TransportError:
                time.sleep(attempt)
        return calls.parsed(JobOut, self._http.post("/v1/jobs", **request))

    def models(self) -> list[ModelOut]:
        """The registered generator models (name, version, checksum, classes, conditions)."""
        response = self._http.get("/v1/models")
        return calls.parsed(ModelList, response).root

    def job(self, job_id: str) -> JobOut:
        return calls.parsed(JobOut, self._http.get(f"/v1/jobs/{job_id}"))

    def wait(
        self, job_id: str, *, poll_s: float = 2.0, timeout_s: float | None = None, progress: bool = True
    ) -> JobOut:
        """Poll the job until it is succeeded, failed or cancelled, with a tqdm bar (clips, phase, ETA).

        Raises:
            TimeoutError: still running after `timeout_s`.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        bar = JobProgressBar(progress)
        try:
            while True:
                job = self.job(job_id)
                bar.update(job)
                if calls.is_finished(job):
                    return job
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} is still {job.status.value} after {timeout_s:g} s")
                time.sleep(poll_s)
        finally:
            bar.close()

    def cancel(self, job_id: str) -> JobOut:
        return calls.parsed(JobOut, self._http.post(f"/v1/jobs/{job_id}/cancel"))

    def clips(self, job_id: str, *, kept: bool | None = None, page_size: int = 100) -> Iterator[ClipOut]:
        """Every clip of the job (kept, dropped or both), page after page."""
        cursor = None
        while True:
            params = calls.clips_params(kept, cursor, page_size)
            page = calls.parsed(Page[ClipOut], self._http.get(f"/v1/jobs/{job_id}/clips", params=params))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def clip(self, clip_id: str) -> ClipDetail:
        return calls.parsed(ClipDetail, self._http.get(f"/v1/clips/{clip_id}"))

    def upload_asset(self, path: Path, kind: str) -> AssetOut:
        """Upload an image prior (`image_prior`) or a reference clip (`reference_clip`): same bytes, same
        asset."""
        return calls.parsed(AssetOut, self._http.post("/v1/assets", **calls.asset_upload(path, kind)))

    def download_database(
        self, job_id: str, out_dir: Path, *, clip_format: str = "npz", progress: bool = True
    ) -> transfer.Download:
        """Download the job's database ZIP into `out_dir`, resuming a `.part` file an earlier call left."""
        target = transfer.database_path(out_dir, job_id, clip_format)
        partial = transfer.partial_path(target)
        url = f"/v1/jobs/{job_id}/database"
        params = {"format": clip_format}
        with self._http.stream(
            "GET", url, params=params, headers=transfer.range_headers(partial)
        ) as response:
            if response.is_error:
                response.read()
            out, offset, total = transfer.start_writing(response, partial)
            with out, transfer.byte_bar(total, offset, target.name, progress) as bar:
                for chunk in response.iter_bytes(transfer.CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
            expected = response.headers.get("x-content-sha256")
        return transfer.finish(partial, target, expected, offset)

    def verify(self, path: Path) -> VerificationReport:
        """`ctrlgenaug verify --api`: every file against the manifest, every clip against its provenance."""
        return verify_database_zip(path, self._provenance)

    def _provenance(self, clip_id: str) -> dict[str, Any] | None:
        try:
            return self.clip(clip_id).provenance
        except ApiError as exc:
            if exc.status_code in (404, 422):
                return None
            raise
