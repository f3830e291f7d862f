"""The asynchronous client (`httpx.AsyncClient`): the same calls as `client.sync.Client`, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from api.schemas import AssetOut, ClipDetail, ClipOut, JobIn, JobOut, ModelOut, Page
from client import calls, transfer
from client.calls import ModelList
from client.errors import ApiError
from client.progress import JobProgressBar
from client.settings import resolve
from client.sync import SUBMIT_ATTEMPTS
from store.export import VerificationReport, manifest_clip_ids, verify_database_zip


class AsyncClient:
    """The REST API of one project (its key), as an async context manager; arguments as `Client`'s."""

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url, key = resolve(url, key)
        self._http = httpx.AsyncClient(**calls.client_options(self.url, key, timeout_s), transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, job: JobIn | dict[str, Any], idempotency_key: str | None = None) -> JobOut:
        """Submit a job; a connection error is retried with the same Idempotency-Key, so it makes one job."""
        request = calls.submit_request(job, idempotency_key)
        for attempt in range(1, SUBMIT_ATTEMPTS):
            try:
                return calls.parsed(JobOut, await self._http.post("/v1/jobs", **request))
            except httpx.TransportError:
                await asyncio.sleep(attempt)
        return calls.parsed(JobOut, await self._http.post("/v1/jobs", **request))

    async def models(self) -> list[ModelOut]:
        """The registered generator models (name, version, checksum, classes, conditions)."""
        response = await self._http.get("/v1/models")
        return calls.parsed(ModelList, response).root

    async def job(self, job_id: str) -> JobOut:
        return calls.parsed(JobOut, await self._http.get(f"/v1/jobs/{job_id}"))

    async def wait(
        self, job_id: str, *, poll_s: float = 2.0, timeout_s: float | None = None, progress: bool = True
    ) -> JobOut:
        """Poll the job until it is succeeded, failed or cancelled, with a tqdm bar (clips, phase, ETA)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        bar = JobProgressBar(progress)
        try:
            while True:
                job = await self.job(job_id)
                bar.update(job)
                if calls.is_finished(job):
                    return job
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} is still {job.status.value} after {timeout_s:g} s")
                await asyncio.sleep(poll_s)
        finally:
            bar.close()

    async def cancel(self, job_id: str) -> JobOut:
        return calls.parsed(JobOut, await self._http.post(f"/v1/jobs/{job_id}/cancel"))

    async def clips(
        self, job_id: str, *, kept: bool | None = None, page_size: int = 100
    ) -> AsyncIterator[ClipOut]:
        """Every clip of the job (kept, dropped or both), page after page."""
        cursor = None
        while True:
            params = calls.clips_params(kept, cursor, page_size)
            response = await self._http.get(f"/v1/jobs/{job_id}/clips", params=params)
            page = calls.parsed(Page[ClipOut], response)
            for clip in page.items:
                yield clip
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def clip(self, clip_id: str) -> ClipDetail:
        return calls.parsed(ClipDetail, await self._http.get(f"/v1/clips/{clip_id}"))

    async def upload_asset(self, path: Path, kind: str) -> AssetOut:
        """Upload an image prior (`image_prior`) or a reference clip (`reference_clip`)."""
        response = await self._http.post("/v1/assets", **calls.asset_upload(path, kind))
        return calls.parsed(AssetOut, response)

    async def download_database(
        self, job_id: str, out_dir: Path, *, clip_format: str = "npz", progress: bool = True
    ) -> transfer.Download:
        """Download the job's database ZIP into `out_dir`, resuming a `.part` file an earlier call left."""
        target = transfer.database_path(out_dir, job_id, clip_format)
        partial = transfer.partial_path(target)
        url = f"/v1/jobs/{job_id}/database"
        params = {"format": clip_format}
        headers = transfer.range_headers(partial)
        async with self._http.stream("GET", url, params=params, headers=headers) as response:
            if response.is_error:
                await response.aread()
            out, offset, total = transfer.start_writing(response, partial)
            with out, transfer.byte_bar(total, offset, target.name, progress) as bar:
                async for chunk in response.aiter_bytes(transfer.CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
            expected = response.headers.get("x-content-sha256")
        return await asyncio.to_thread(transfer.finish, partial, target, expected, offset)

    async def verify(self, path: Path) -> VerificationReport:
        """Every file against the manifest, every clip against its provenance (looked up concurrently)."""
        clip_ids = await asyncio.to_thread(manifest_clip_ids, path)
        found = await asyncio.gather(*(self._provenance(clip_id) for clip_id in dict.fromkeys(clip_ids)))
        records = dict(zip(dict.fromkeys(clip_ids), found, strict=True))
        return await asyncio.to_thread(verify_database_zip, path, records.get)

    async def _provenance(self, clip_id: str) -> dict[str, Any] | None:
        try:
            return (await self.clip(clip_id)).provenance
        except ApiError as exc:
            if exc.status_code in (404, 422):
                return None
            raise
