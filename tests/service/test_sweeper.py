"""The sweeper removes objects that no row points to, and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import service_files as files
from fastapi.testclient import TestClient
from service_files import bucket_keys
from sqlalchemy.orm import Session, sessionmaker

from store.objects import S3ObjectStore
from store.sweeper import sweep_orphans


def test_sweep_removes_only_orphans(
    client: TestClient, make_key: Callable[[str], dict[str, str]], s3_store: S3ObjectStore,
    sessions: sessionmaker[Session],
) -> None:
    headers = make_key("sweep")
    client.post("/v1/assets", headers=headers, files={"file": ("a.png", files.png())}, data={"kind": "image_prior"})
    referenced = bucket_keys(s3_store)
    s3_store.put("jobs/crashed/banks/0000/clip-0000.npz", b"left by a crash")
    with sessions() as session:
        assert sweep_orphans(s3_store, session) == []  # too young: may belong to a transaction in flight
        assert sweep_orphans(s3_store, session, min_age=timedelta(0)) == ["jobs/crashed/banks/0000/clip-0000.npz"]
    assert bucket_keys(s3_store) == referenced and len(referenced) == 2
