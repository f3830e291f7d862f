"""Projects and their API keys; only the SHA-256 of a key is stored, its prefix is shown."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.audit import append_event
from store.models import ApiKey, Project

KEY_SCHEME = "cga_"
PREFIX_LENGTH = 12


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


def create_api_key(session: Session, project_name: str) -> tuple[ApiKey, str]:
    """Create a key for the project (created if new); returns the row and the plaintext key, shown once."""
    project = get_or_create_project(session, project_name)
    key = KEY_SCHEME + secrets.token_urlsafe(32)
    row = ApiKey(project_id=project.id, prefix=key[:PREFIX_LENGTH], key_hash=hash_api_key(key))
    session.add(row)
    session.flush()
    append_event(session, project.id, "api_key.created", {"key_id": str(row.id), "prefix": row.prefix})
    return row, key


def authenticate(session: Session, key: str) -> Project | None:
    row = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )
    return row.project if row is not None else None
