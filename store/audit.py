"""Per-project audit log as a hash chain: hash_n = sha256(hash_{n-1} + canonical JSON of event n)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AuditEvent, Project, utcnow

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _utc_iso(moment: datetime) -> str:
    # SQLite hands timestamps back without a zone; every stored timestamp is UTC.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def event_hash(
    prev_hash: str, project_id: uuid.UUID, seq: int, kind: str, payload: dict[str, Any], created_at: datetime
) -> str:
    body = canonical_json(
        {
            "project_id": str(project_id),
            "seq": seq,
            "kind": kind,
            "payload": payload,
            "created_at": _utc_iso(created_at),
        }
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def append_event(session: Session, project_id: uuid.UUID, kind: str, payload: dict[str, Any]) -> AuditEvent:
    """Add the next link of the project's chain to the session (the caller commits)."""
    # NO KEY UPDATE: the caller's inserts referencing the project already hold KEY SHARE on its row; a plain
    # FOR UPDATE upgrades that lock and deadlocks two concurrent appenders (seen under load).
    session.execute(select(Project.id).where(Project.id == project_id).with_for_update(key_share=True))
    last = session.scalar(
        select(AuditEvent).where(AuditEvent.project_id == project_id).order_by(AuditEvent.seq.desc()).limit(1)
    )
    seq = 1 if last is None else last.seq + 1
    prev_hash = GENESIS_HASH if last is None else last.hash
    created_at = utcnow()
    event = AuditEvent(
        project_id=project_id,
        seq=seq,
        kind=kind,
        payload=json.loads(canonical_json(payload)),
        created_at=created_at,
        prev_hash=prev_hash,
        hash=event_hash(prev_hash, project_id, seq, kind, payload, created_at),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    events: int
    first_bad_seq: int | None
    message: str


def verify_chain(session: Session, project_id: uuid.UUID) -> ChainReport:
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.project_id == project_id).order_by(AuditEvent.seq)
    ).all()
    prev_hash = GENESIS_HASH
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return ChainReport(False, len(events), event.seq, f"seq {event.seq}: expected {expected_seq}")
        if event.prev_hash != prev_hash:
            return ChainReport(False, len(events), event.seq, f"seq {event.seq}: prev_hash does not link")
        recomputed = event_hash(prev_hash, project_id, event.seq, event.kind, event.payload, event.created_at)
        if recomputed != event.hash:
            return ChainReport(
                False, len(events), event.seq, f"seq {event.seq}: content does not match its hash"
            )
        prev_hash = event.hash
    return ChainReport(True, len(events), None, f"{len(events)} events verified")
