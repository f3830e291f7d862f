"""The service database as the commands open it: migrated first (embedded SQLite), or refused with the
command to run (a server database not at the head revision)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from cli.errors import UserError, masked_url
from migrations import current_revision, head_revision, upgrade
from store.db import build_engine, build_sessionmaker
from store.settings import Settings


def ensure_migrated(settings: Settings) -> None:
    url = settings.resolved_database_url
    if make_url(url).get_backend_name() == "sqlite":
        upgrade(url)
        return
    engine = build_engine(url)
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    finally:
        engine.dispose()
    head = head_revision()
    if current != head:
        raise UserError(
            f"the database {masked_url(url)} is at revision {current or 'none (empty)'}, not {head}; "
            "run `ctrlgenaug db upgrade` with the same CTRLGENAUG_DATABASE_URL"
        )


def migrated_engine(settings: Settings) -> Engine:
    ensure_migrated(settings)
    return build_engine(settings.resolved_database_url)


def open_session(settings: Settings) -> Session:
    return build_sessionmaker(migrated_engine(settings))()
