"""Hypothesis properties: the database export round trip (store.export → verify → classify's reader) and
the audit hash chain (every edit of a stored event is detected)."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from classify.synthetic_db import read_synthetic_db
from migrations import upgrade
from store.audit import append_event, verify_chain
from store.db import build_engine, build_sessionmaker
from store.export import CROISSANT_NAME, MANIFEST_NAME, export_database, verify_database_zip
from store.jobs import clip_object_key, upsert_clip
from store.models import AuditEvent, Bank, Job, ModelRecord, Project
from store.objects import LocalObjectStore

PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The embedded database (SQLite through the Alembic migrations): no server needed for properties."""
    url = f"sqlite:///{tmp_path_factory.mktemp('properties') / 'ctrlgenaug.db'}"
    upgrade(url)
    engine = build_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def db(sqlite_engine: Engine) -> sessionmaker[Session]:
    return build_sessionmaker(sqlite_engine)


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> LocalObjectStore:
    return LocalObjectStore(tmp_path_factory.mktemp("objects"))


def new_project(session: Session) -> Project:
    project = Project(name=f"p-{uuid.uuid4().hex}")
    session.add(project)
    session.flush()
    return project


class_name = st.text(
    st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from([",", '"', "\n", "\r", ";", "'"]),
    min_size=1,
    max_size=12,
).filter(lambda name: name == name.strip() and name)
score = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def databases(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(class_name, min_size=1, max_size=3, unique=True))
    banks = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "class_index": st.none() | st.integers(0, len(names) - 1),
                    "kept": st.lists(st.booleans(), min_size=1, max_size=3),
                    "scores": st.tuples(score, score, score, score),
                }
            ),
            min_size=1,
            max_size=3,
        )
    )
    return {"class_names": names, "banks": banks, "seed": draw(st.integers(0, 2**31 - 1))}


def build_job(
    session: Session, store: LocalObjectStore, spec: dict[str, Any]
) -> tuple[Job, dict[str, bytes]]:
    """A finished job as the worker leaves it; returns it and each clip's NPZ bytes by clip id."""
    project = new_project(session)
    model = ModelRecord(
        name=f"m-{uuid.uuid4().hex[:8]}",
        version="1",
        checksum="0" * 64,
        path="/nowhere",
        class_names=spec["class_names"],
        num_frames=4,
        height=8,
        width=8,
        conditions=["class_label"],
    )
    session.add(model)
    session.flush()
    job = Job(
        project_id=project.id,
        model_id=model.id,
        request={},
        seed=spec["seed"],
        sampler={},
        filter_settings={},
    )
    for index, bank_spec in enumerate(spec["banks"]):
        given = bank_spec["class_index"]
        job.banks.append(
            Bank(
                index=index,
                class_index=given,
                class_label=None if given is None else spec["class_names"][given],
                samples=len(bank_spec["kept"]),
            )
        )
    session.add(job)
    session.flush()
    rng = np.random.default_rng(spec["seed"])
    payloads = {}
    for bank, bank_spec in zip(job.banks, spec["banks"], strict=True):
        for i, kept in enumerate(bank_spec["kept"]):
            buffer = io.BytesIO()
            np.savez(buffer, frames=rng.integers(0, 256, (4, 8, 8), dtype=np.uint8))
            info = store.put(clip_object_key(job.id, bank.index, i), buffer.getvalue())
            loss, threshold, vae_seq, theta = bank_spec["scores"]
            clip = upsert_clip(
                session,
                job_id=job.id,
                bank_id=bank.id,
                index_in_bank=i,
                seed=i,
                object_key=info.key,
                sha256=info.sha256,
                size_bytes=info.size,
                kept=kept,
                reason=None if kept else "duplicate",
                loss=loss,
                group_threshold=threshold,
                vae_seq=vae_seq,
                theta=theta,
            )
            payloads[str(clip.id)] = buffer.getvalue()
    export_database(session, store, job)
    session.commit()
    return job, payloads


def rewrite_member(archive_path: Path, member: str, out: Path) -> None:
    with zipfile.ZipFile(archive_path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == member:
                data = data[:-1] + bytes([data[-1] ^ 0x01])
            target.writestr(info, data)


@PROPERTY_SETTINGS
@given(spec=databases(), data=st.data())
def test_database_round_trip_and_tampering(
    spec: dict[str, Any],
    data: st.DataObject,
    db: sessionmaker[Session],
    objects: LocalObjectStore,
    tmp_path: Path,
) -> None:
    with db() as session:
        job, payloads = build_job(session, objects, spec)
        assert job.database_object_key is not None
        archive = tmp_path / f"{job.id}.zip"
        archive.write_bytes(objects.get(job.database_object_key))
    kept = [(b, k) for b in spec["banks"] for k in b["kept"] if k]
    report = verify_database_zip(archive, provenance_lookup=None)
    assert report.ok, report.errors
    assert report.files_checked == len(kept)

    with zipfile.ZipFile(archive) as zipped:
        croissant = json.loads(zipped.read(CROISSANT_NAME), parse_constant=lambda c: pytest.fail(c))
        records = croissant["recordSet"][0]["data"]
        names = zipped.namelist()
    assert sorted(r["clips/clip_id"] for r in records) == sorted(
        clip_id for clip_id, _ in payloads.items() if any(r["clips/clip_id"] == clip_id for r in records)
    )
    for record in records:
        assert zipfile.Path(archive, record["clips/path"]).read_bytes() == payloads[record["clips/clip_id"]]

    labelled = [b for b, _ in kept if b["class_index"] is not None]
    if labelled:
        read = read_synthetic_db(archive, class_names=spec["class_names"])
        assert read.unlabelled == len(kept) - len(labelled)
        assert read.clips.labels.tolist() == [b["class_index"] for b in labelled]

    target = data.draw(st.sampled_from([n for n in names if n.endswith((".npz", ".csv", ".json"))]))
    tampered = tmp_path / f"{job.id}-tampered.zip"
    rewrite_member(archive, target, tampered)
    report = verify_database_zip(tampered)
    assert not report.ok
    if target.endswith(".npz"):
        assert any(e.startswith(f"{target}: SHA-256") for e in report.errors), report.errors
    elif target == MANIFEST_NAME:
        assert any(MANIFEST_NAME in e for e in report.errors), report.errors


json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=5),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)
event_payload = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: "\x00" not in k), json_value, max_size=4
)

TAMPERINGS = (
    "payload",
    "kind",
    "created_at",
    "seq",
    "prev_hash",
    "hash",
    "delete_inner",
    "swap",
    "forge_insert",
)


def tamper(
    session: Session, events: list[AuditEvent], how: str, position: int, payload: dict[str, Any]
) -> None:
    """Change stored event rows the way an intruder with database access might."""
    event = events[position]
    if how == "payload":
        event.payload = {**event.payload, "tampered": payload or True}
    elif how == "kind":
        event.kind = event.kind + "!"
    elif how == "created_at":
        event.created_at = event.created_at + timedelta(microseconds=1)
    elif how == "seq":
        event.seq = event.seq + len(events)
    elif how == "prev_hash":
        event.prev_hash = "f" * 64
    elif how == "hash":
        event.hash = "e" * 64
    elif how == "delete_inner":
        session.delete(event)
    elif how == "swap":
        other = events[position + 1]
        event.payload, other.payload = other.payload, event.payload
        event.kind, other.kind = other.kind, event.kind
    elif how == "forge_insert":
        # a forged event re-hashed onto its predecessor, but the next link still points at the old hash
        for later in reversed(events[position:]):
            later.seq += 1
            session.flush()
        forged = AuditEvent(
            project_id=event.project_id,
            seq=position + 1,
            kind="forged",
            payload=payload,
            created_at=event.created_at,
            prev_hash=event.prev_hash,
            hash="",
        )
        from store.audit import event_hash

        forged.hash = event_hash(
            forged.prev_hash, forged.project_id, forged.seq, forged.kind, payload, forged.created_at
        )
        session.add(forged)
    session.flush()


@PROPERTY_SETTINGS
@given(
    payloads=st.lists(event_payload, min_size=3, max_size=8),
    how=st.sampled_from(TAMPERINGS),
    data=st.data(),
)
def test_audit_chain_detects_any_edit(
    payloads: list[dict[str, Any]], how: str, data: st.DataObject, db: sessionmaker[Session]
) -> None:
    with db() as session:
        project = new_project(session)
        for i, payload in enumerate(payloads):
            append_event(session, project.id, f"kind.{i}", payload)
        session.commit()
        assert verify_chain(session, project.id).ok
        events = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.project_id == project.id).order_by(AuditEvent.seq)
            )
        )
        last = len(events) - 1 if how not in ("delete_inner", "swap") else len(events) - 2
        position = data.draw(st.integers(0, last), label="position")
        if how == "swap" and events[position].payload == events[position + 1].payload:
            how = "kind"
        tamper(session, events, how, position, data.draw(event_payload, label="forged payload"))
        report = verify_chain(session, project.id)
        assert not report.ok, (how, position)
        assert report.first_bad_seq is not None
        session.rollback()
