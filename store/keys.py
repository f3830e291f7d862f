"""Projects and their API keys; only the SHA-256 of a key is stored, its prefix is shown.

A key carries scopes: `jobs:write` (upload assets, register datasets, submit, cancel and delete), `read`
(jobs, clips and their provenance, assets, datasets, downloads) and `audit:read` (the audit log and its
verification). Creating, revoking and rotating a key are events of the project's audit chain.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.audit import append_event
from store.models import ApiKey, Project, utcnow

KEY_SCHEME = "cga_"
PREFIX_LENGTH = 12
JOBS_WRITE = "jobs:write"
READ = "read"
AUDIT_READ = "audit:read"
SCOPES: tuple[str, ...] = (JOBS_WRITE, READ, AUDIT_READ)
AUDITOR_SCOPES: tuple[str, ...] = (READ, AUDIT_READ)


class KeyNotFound(LookupError):
    """No key of the project matches the reference, or more than one does."""


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_project(session: Session, name: str) -> Project:
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("project: name must be 1-100 characters")
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        project = Project(name=name)
        session.add(project)
        session.flush()
    return project


def find_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name.strip()))
    if project is None:
        raise ValueError(f"project: no project named {name!r}")
    return project


def checked_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes in SCOPES order, each once; an unknown or empty set is a ValueError naming `scope`."""
    given = set(scopes)
    unknown = sorted(given - set(SCOPES))
    if unknown:
        raise ValueError(f"scope: unknown {', '.join(unknown)}; the scopes are {', '.join(SCOPES)}")
    if not given:
        raise ValueError(f"scope: a key needs at least one of {', '.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in given]


def _new_key(session: Session, project: Project, scopes: list[str]) -> tuple[ApiKey, str]:
    key = KEY_SCHEME + secrets.token_urlsafe(32)
    row = ApiKey(project_id=project.id, prefix=key[:PREFIX_LENGTH], key_hash=hash_api_key(key), scopes=scopes)
    session.add(row)
    session.flush()
    return row, key


def create_api_key(session: Session, project_name: str, scopes: Sequence[str] = SCOPES) -> tuple[ApiKey, str]:
    """Create a key for the project (created if new); returns the row and the plaintext key, shown once."""
    project = get_or_create_project(session, project_name)
    row, key = _new_key(session, project, checked_scopes(scopes))
    append_event(
        session,
        project.id,
        "api_key.created",
        {"key_id": str(row.id), "prefix": row.prefix, "scopes": row.scopes},
    )
    return row, key


def list_api_keys(session: Session, project: Project) -> list[ApiKey]:
    return list(
        session.scalars(select(ApiKey).where(ApiKey.project_id == project.id).order_by(ApiKey.created_at))
    )


def find_api_key(session: Session, project: Project, reference: str) -> ApiKey:
    """The project's key whose id or prefix (as `keys list` shows them) is `reference`."""
    query = select(ApiKey).where(ApiKey.project_id == project.id)
    try:
        query = query.where(ApiKey.id == uuid.UUID(reference))
    except ValueError:
        query = query.where(ApiKey.prefix == reference.rstrip("…"))
    rows = session.scalars(query).all()
    if len(rows) != 1:
        found = "no key" if not rows else f"{len(rows)} keys (use the id)"
        raise KeyNotFound(f"key: {found} of project {project.name} matches {reference!r}")
    return rows[0]


def revoke_api_key(session: Session, key: ApiKey) -> None:
    """Revoke the key: its next request is a 401. Revoking a revoked key is a ValueError."""
    if key.revoked_at is not None:
        raise ValueError(f"key: {key.prefix}… was already revoked at {key.revoked_at.isoformat()}")
    key.revoked_at = utcnow()
    append_event(session, key.project_id, "api_key.revoked", {"key_id": str(key.id), "prefix": key.prefix})


def rotate_api_key(session: Session, key: ApiKey) -> tuple[ApiKey, str]:
    """Replace the key by a new one with the same scopes and revoke it; returns the new row and key."""
    if key.revoked_at is not None:
        raise ValueError(f"key: {key.prefix}… is revoked; create a new key instead")
    row, plaintext = _new_key(session, key.project, list(key.scopes))
    key.revoked_at = utcnow()
    append_event(
        session,
        key.project_id,
        "api_key.rotated",
        {
            "key_id": str(key.id),
            "prefix": key.prefix,
            "new_key_id": str(row.id),
            "new_prefix": row.prefix,
            "scopes": row.scopes,
        },
    )
    return row, plaintext


def authenticate(session: Session, key: str) -> ApiKey | None:
    """The live key row of `key`; None when unknown or revoked."""
    return session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )
