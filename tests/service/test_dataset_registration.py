"""Registering a data build on the embedded shape (SQLite): the slow part (reading the clips, computing their
motion fields, writing objects) happens before the write transaction, so other writers are not held up."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import service_files as files
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from migrations import upgrade
from store.datasets import ClipBounds, register_dataset
from store.db import build_engine, build_sessionmaker
from store.keys import get_or_create_project
from store.models import Dataset, Project
from store.objects import LocalObjectStore
from store.unit_of_work import unit_of_work

BOUNDS = ClipBounds(max_frames=64, max_side=512, max_file_bytes=1 << 20)


def test_another_write_commits_while_a_registration_computes_motion_fields(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    upgrade(url)
    sessions = build_sessionmaker(build_engine(url))
    # a writer that gives up after 0.5 s instead of the service's 30 s: a held write lock fails it fast
    impatient = create_engine(url, connect_args={"timeout": 0.5})
    files.data_build_zip(tmp_path / "build")
    with sessions() as session:
        project_id = get_or_create_project(session, "owner").id
        session.commit()

    writes: list[tuple[str, float]] = []

    def extract_while_another_project_is_created(frames: np.ndarray) -> np.ndarray:
        started = time.monotonic()
        with Session(impatient) as other:
            get_or_create_project(other, f"written-during-registration-{len(writes)}")
            other.commit()
        writes.append((f"written-during-registration-{len(writes)}", time.monotonic() - started))
        return np.zeros((frames.shape[0], 2, *frames.shape[1:]), dtype=np.float32)

    store = LocalObjectStore(tmp_path / "objects")
    with sessions() as session, unit_of_work(session, store) as staged:
        dataset = register_dataset(
            session,
            staged,
            project_id=project_id,
            name="build",
            manifest_path=tmp_path / "build" / "manifest.jsonl",
            extract_motion=extract_while_another_project_is_created,
            bounds=BOUNDS,
        )
    # c0a has a cached motion field; c0b and c1a are extracted, each while another session writes
    assert [name for name, _ in writes] == ["written-during-registration-0", "written-during-registration-1"]
    assert all(seconds < 0.5 for _, seconds in writes), writes
    with sessions() as session:
        assert session.scalars(select(Project.name).order_by(Project.name)).all() == [
            "owner",
            "written-during-registration-0",
            "written-during-registration-1",
        ]
        registered = session.get_one(Dataset, dataset.id)
        assert sorted(c.clip_id for c in registered.clips) == ["c0a", "c0b", "c1a"]
    impatient.dispose()
