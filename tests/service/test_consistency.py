"""Objects and rows stay consistent: a failed transaction removes its objects; the sweeper removes orphans."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
import service_files as files
from fastapi.testclient import TestClient
from service_files import bucket_keys
from sqlalchemy.orm import Session, sessionmaker

from store.keys import get_or_create_project
from store.models import Project
from store.objects import S3ObjectStore
from store.sweeper import sweep_orphans
from store.unit_of_work import unit_of_work


def test_sweep_removes_only_orphans(
    client: TestClient,
    make_key: Callable[[str], dict[str, str]],
    s3_store: S3ObjectStore,
    sessions: sessionmaker[Session],
) -> None:
    headers = make_key("sweep")
    client.post(
        "/v1/assets", headers=headers, files={"file": ("a.png", files.png())}, data={"kind": "image_prior"}
    )
    referenced = bucket_keys(s3_store)
    s3_store.put("jobs/crashed/banks/0000/clip-0000.npz", b"left by a crash")
    with sessions() as session:
        assert sweep_orphans(s3_store, session) == []  # too young: may belong to a transaction in flight
        assert sweep_orphans(s3_store, session, min_age=timedelta(0)) == [
            "jobs/crashed/banks/0000/clip-0000.npz"
        ]
    assert bucket_keys(s3_store) == referenced and len(referenced) == 2


def test_unit_of_work_removes_its_objects_when_the_transaction_fails(
    clean: None, s3_store: S3ObjectStore, sessions: sessionmaker[Session]
) -> None:
    s3_store.put("shared/already-there", b"kept")
    with sessions() as session, pytest.raises(RuntimeError, match="crash after the writes"):
        with unit_of_work(session, s3_store) as staged:
            get_or_create_project(session, "doomed")
            staged.put("new/object", b"written first")
            staged.put("shared/already-there", b"not rewritten")
            raise RuntimeError("crash after the writes")
    assert bucket_keys(s3_store) == ["shared/already-there"]
    assert s3_store.get("shared/already-there") == b"kept"
    with sessions() as session:
        assert session.query(Project).count() == 0
