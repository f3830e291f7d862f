"""One contract for both object stores: S3 (SeaweedFS here, MinIO in production) and the local folder."""

from __future__ import annotations

import hashlib
import io
import os
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import ValidationError

from store.objects import LocalObjectStore, ObjectNotFound, ObjectStore, S3ObjectStore
from store.settings import Settings


@pytest.fixture(params=["s3", "local"])
def store(request: pytest.FixtureRequest, clean: None) -> ObjectStore:
    return request.getfixturevalue("s3_store" if request.param == "s3" else "local_store")


def test_put_bytes_and_stream_return_size_and_sha256(store: ObjectStore) -> None:
    data = b"ctrl-genaug" * 100
    info = store.put("a/b/one.bin", data)
    assert (info.key, info.size, info.sha256) == ("a/b/one.bin", len(data), hashlib.sha256(data).hexdigest())
    big = os.urandom(6 * 1024 * 1024 + 17)
    streamed = store.put("a/big.bin", io.BytesIO(big), content_type="application/zip")
    assert streamed.size == len(big)
    assert streamed.sha256 == hashlib.sha256(big).hexdigest()
    assert store.get("a/big.bin") == big
    assert b"".join(store.iter_chunks("a/b/one.bin")) == data
    assert b"".join(store.iter_chunks("a/big.bin", offset=5 * 1024 * 1024 + 3)) == big[5 * 1024 * 1024 + 3 :]
    stat = store.stat("a/big.bin")
    assert (stat.size, stat.sha256) == (len(big), hashlib.sha256(big).hexdigest())
    assert stat.modified is not None


def test_list_by_prefix_exists_and_idempotent_delete(store: ObjectStore) -> None:
    for key in ("jobs/1/x.npz", "jobs/1/y.npz", "jobs/2/z.npz", "assets/q"):
        store.put(key, key.encode())
    assert sorted(i.key for i in store.list("jobs/1/")) == ["jobs/1/x.npz", "jobs/1/y.npz"]
    assert sorted(i.key for i in store.list()) == ["assets/q", "jobs/1/x.npz", "jobs/1/y.npz", "jobs/2/z.npz"]
    assert {i.size for i in store.list("jobs/2/")} == {len(b"jobs/2/z.npz")}
    assert store.exists("assets/q")
    store.delete("assets/q")
    store.delete("assets/q")
    assert not store.exists("assets/q")
    with pytest.raises(ObjectNotFound):
        store.stat("assets/q")
    with pytest.raises(ObjectNotFound):
        store.get("assets/q")


def test_overwrite_replaces_content(store: ObjectStore) -> None:
    store.put("k", b"first")
    store.put("k", b"second")
    assert store.get("k") == b"second"


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", "a\\b", ""])
def test_unclean_keys_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError, match="object key"):
        store.put(key, b"x")


def test_s3_presigned_url_downloads_the_object(s3_store: S3ObjectStore, clean: None) -> None:
    s3_store.put("p/file.bin", b"presigned!")
    url = s3_store.presigned_get("p/file.bin", 60)
    assert url is not None
    assert httpx.get(url).content == b"presigned!"
    s3_store.ping()


def test_presigned_urls_are_signed_for_the_public_endpoint(
    settings: Settings, s3_store: S3ObjectStore, clean: None
) -> None:
    # the service talks to 127.0.0.1:PORT; browsers reach the same server as localhost:PORT
    port = settings.s3_endpoint.rsplit(":", 1)[1]  # type: ignore[union-attr]
    public = settings.model_copy(
        update={"s3_bucket": s3_store.bucket, "s3_public_endpoint": f"http://localhost:{port}"}
    )
    store = S3ObjectStore.from_settings(public)
    store.put("p/public.bin", b"from the browser")
    url = store.presigned_get("p/public.bin", 60)
    assert url is not None and urlsplit(url).netloc == f"localhost:{port}"
    assert httpx.get(url).content == b"from the browser"
    internal = urlsplit(url)._replace(netloc=settings.s3_endpoint).geturl()  # type: ignore[arg-type]
    assert httpx.get(internal).status_code == 403  # the signature covers the host


@pytest.mark.parametrize(
    "endpoint", ["s3.example.org", "ftp://s3.example.org", "https://s3.example.org/bucket"]
)
def test_public_endpoint_must_be_an_origin(endpoint: str) -> None:
    with pytest.raises(ValidationError, match="s3_public_endpoint"):
        Settings(s3_public_endpoint=endpoint)


def test_local_presigned_uses_the_signer_or_none(local_store: LocalObjectStore, tmp_path) -> None:  # type: ignore[no-untyped-def]
    local_store.put("p/file.bin", b"x")
    assert local_store.presigned_get("p/file.bin", 60) is None
    signed = LocalObjectStore(tmp_path / "objects", url_signer=lambda key, s: f"/signed/{key}?ttl={s}")
    assert signed.presigned_get("p/file.bin", 60) == "/signed/p/file.bin?ttl=60"
    assert not any(p.name.startswith(".partial-") for p in (tmp_path / "objects").rglob("*"))
