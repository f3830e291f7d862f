"""Downloading a job's database into a folder, resumable: the bytes go to `<name>.part`, an interrupted
download continues from its size with an HTTP Range request, and the finished file must hash to the
SHA-256 the service sent (`X-Content-SHA256`) before it takes its name."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import httpx
from tqdm import tqdm

from client.errors import DownloadError, raise_for_error

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Download:
    """A finished download: where it is, from which byte it resumed (0: from the start), its SHA-256."""

    path: Path
    resumed_from: int
    sha256: str


def database_path(out_dir: Path, job_id: str, clip_format: str) -> Path:
    suffix = "" if clip_format == "npz" else f"-{clip_format}"
    return out_dir / f"ctrlgenaug-{job_id}{suffix}.zip"


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def range_headers(partial: Path) -> dict[str, str]:
    """`Range` from the partial file's size (none when there is nothing to resume)."""
    size = partial.stat().st_size if partial.is_file() else 0
    return {"Range": f"bytes={size}-"} if size else {}


def start_writing(response: httpx.Response, partial: Path) -> tuple[BinaryIO, int, int]:
    """(open file, offset it continues from, total size) for a 200 (start over) or 206 (append) answer.

    Raises:
        ApiError: the service refused (its body must have been read).
    """
    raise_for_error(response)
    length = int(response.headers.get("content-length", 0))
    if response.status_code == 206:
        offset = int(response.headers["content-range"].split()[1].split("-")[0])
        if offset != partial.stat().st_size:
            raise DownloadError(f"{partial}: the service resumed at byte {offset}, not at the file's end")
        return partial.open("ab"), offset, offset + length
    partial.parent.mkdir(parents=True, exist_ok=True)
    return partial.open("wb"), 0, length


def finish(partial: Path, target: Path, expected_sha256: str | None, resumed_from: int) -> Download:
    """Check the whole file against the service's SHA-256, then give it its name; a mismatch removes the
    partial file (the next attempt starts over) and raises."""
    digest = hashlib.sha256()
    with partial.open("rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        partial.unlink()
        raise DownloadError(
            f"{target.name}: SHA-256 {sha256} differs from the service's {expected_sha256} (the partial file "
            "held other bytes); it was removed, download again"
        )
    partial.replace(target)
    return Download(target, resumed_from, sha256)


def byte_bar(total: int, offset: int, name: str, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=name, disable=not enabled)
