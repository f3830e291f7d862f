"""Object storage behind one interface: S3 (MinIO in production, any S3 server) or a local folder."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

from minio import Minio
from minio.error import S3Error

from store.settings import Settings

CHUNK_BYTES = 1024 * 1024
SHA256_METADATA = "sha256"
DEFAULT_S3_REGION = "us-east-1"


class ObjectNotFound(KeyError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str | None
    modified: datetime | None = None


class ObjectStore(Protocol):
    def put(
        self, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Write an object (bytes or a readable binary stream); returns its size and SHA-256."""

    def get(self, key: str) -> bytes: ...

    def iter_chunks(self, key: str, offset: int = 0) -> Iterator[bytes]:
        """The object's bytes from `offset` on, chunk by chunk."""

    def stat(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing object is not an error."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (sha256 may be None here; `stat` gives it)."""

    def presigned_get(self, key: str, expires_s: int) -> str | None:
        """A time-limited download URL (local store: a signed URL path of the API), or None."""

    def ping(self) -> None:
        """Raise when the storage cannot be reached."""


def validate_key(key: str) -> str:
    path = PurePosixPath(key)
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or any(part in ("..", ".", "") for part in key.split("/"))
    ):
        raise ValueError(f"object key: {key!r} is not a clean relative key")
    return str(path)


def _spool_hashing(data: bytes | BinaryIO) -> tuple[BinaryIO, int, str]:
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        return io.BytesIO(raw), len(raw), hashlib.sha256(raw).hexdigest()
    spool = tempfile.SpooledTemporaryFile(max_size=16 * CHUNK_BYTES)  # noqa: SIM115 - returned to caller
    digest = hashlib.sha256()
    size = 0
    while chunk := data.read(CHUNK_BYTES):
        digest.update(chunk)
        spool.write(chunk)
        size += len(chunk)
    spool.seek(0)
    return spool, size, digest.hexdigest()  # type: ignore[return-value]


class S3ObjectStore:
    """Objects in one S3 bucket; download URLs are signed with `presign_client` when browsers reach S3 at
    another address than the service does (it only signs: presigning makes no request)."""

    def __init__(self, client: Minio, bucket: str, presign_client: Minio | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.presign_client = presign_client or client

    @classmethod
    def from_settings(cls, settings: Settings) -> S3ObjectStore:
        if not settings.s3_endpoint:
            raise ValueError("s3_endpoint: not set")
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
        return cls(client, settings.s3_bucket, _public_client(settings))

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(bucket_name=self.bucket):
            self.client.make_bucket(bucket_name=self.bucket)

    def put(
        self, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        key = validate_key(key)
        stream, size, sha256 = _spool_hashing(data)
        with stream:
            self.client.put_object(
                bucket_name=self.bucket,
                object_name=key,
                data=stream,
                length=size,
                content_type=content_type,
                metadata={SHA256_METADATA: sha256},
            )
        return ObjectInfo(key, size, sha256)

    def get(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def iter_chunks(self, key: str, offset: int = 0) -> Iterator[bytes]:
        try:
            response = self.client.get_object(
                bucket_name=self.bucket, object_name=validate_key(key), offset=offset
            )
        except S3Error as exc:
            raise self._translate(exc, key) from exc
        try:
            yield from response.stream(CHUNK_BYTES)
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo:
        try:
            stat = self.client.stat_object(bucket_name=self.bucket, object_name=validate_key(key))
        except S3Error as exc:
            raise self._translate(exc, key) from exc
        metadata = {k.lower(): v for k, v in (stat.metadata or {}).items()}
        return ObjectInfo(
            key, int(stat.size or 0), metadata.get(f"x-amz-meta-{SHA256_METADATA}"), stat.last_modified
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.remove_object(bucket_name=self.bucket, object_name=validate_key(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for obj in self.client.list_objects(bucket_name=self.bucket, prefix=prefix or None, recursive=True):
            if obj.object_name is not None and not obj.is_dir:
                yield ObjectInfo(obj.object_name, int(obj.size or 0), None, obj.last_modified)

    def presigned_get(self, key: str, expires_s: int) -> str | None:
        return self.presign_client.presigned_get_object(
            bucket_name=self.bucket, object_name=validate_key(key), expires=timedelta(seconds=expires_s)
        )

    def ping(self) -> None:
        if not self.client.bucket_exists(bucket_name=self.bucket):
            raise ObjectNotFound(f"bucket {self.bucket!r} does not exist")

    @staticmethod
    def _translate(exc: S3Error, key: str) -> Exception:
        if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
            return ObjectNotFound(key)
        return exc


def _public_client(settings: Settings) -> Minio | None:
    if settings.s3_public_endpoint is None:
        return None
    public = urlsplit(settings.s3_public_endpoint)
    return Minio(
        public.netloc,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=public.scheme == "https",
        # with a region given the client never asks the (unreachable) public address for the bucket's region
        region=settings.s3_region or DEFAULT_S3_REGION,
    )


class LocalObjectStore:
    """Objects as files under `root`; writes go to a temporary file and are renamed into place."""

    def __init__(self, root: Path, url_signer: Callable[[str, int], str] | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url_signer = url_signer

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(
        self, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        stream, size, sha256 = _spool_hashing(data)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with stream, os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    out.write(chunk)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return ObjectInfo(key, size, sha256)

    def get(self, key: str) -> bytes:
        return b"".join(self.iter_chunks(key))

    def iter_chunks(self, key: str, offset: int = 0) -> Iterator[bytes]:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        with path.open("rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(CHUNK_BYTES):
                yield chunk

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                digest.update(chunk)
        stat = path.stat()
        return ObjectInfo(key, stat.st_size, digest.hexdigest(), datetime.fromtimestamp(stat.st_mtime, UTC))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not path.name.startswith(".partial-"):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    yield ObjectInfo(key, stat.st_size, None, datetime.fromtimestamp(stat.st_mtime, UTC))

    def presigned_get(self, key: str, expires_s: int) -> str | None:
        if self.url_signer is None:
            return None
        return self.url_signer(validate_key(key), expires_s)

    def ping(self) -> None:
        if not self.root.is_dir():
            raise ObjectNotFound(f"object folder {self.root} does not exist")


def build_object_store(
    settings: Settings, url_signer: Callable[[str, int], str] | None = None
) -> ObjectStore:
    if settings.s3_endpoint:
        store = S3ObjectStore.from_settings(settings)
        store.ensure_bucket()
        return store
    return LocalObjectStore(settings.objects_dir, url_signer=url_signer)
