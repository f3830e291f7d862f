"""One runner per job at a time, released by the operating system or server if its process dies:
a PostgreSQL session advisory lock, or an `flock` beside the SQLite database."""

from __future__ import annotations

import fcntl
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text


def advisory_key(job_id: uuid.UUID) -> int:
    return int.from_bytes(job_id.bytes[:8], "big", signed=True)


@contextmanager
def _postgres_lock(engine: Engine, job_id: uuid.UUID) -> Iterator[bool]:
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        acquired = bool(
            connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": advisory_key(job_id)})
        )
        yield acquired
        if acquired:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": advisory_key(job_id)})
    except BaseException:
        # dropping the connection releases a session lock whatever state it is in
        connection.invalidate()
        raise
    finally:
        connection.close()


@contextmanager
def _file_lock(lock_dir: Path, job_id: uuid.UUID) -> Iterator[bool]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"job-{job_id}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def job_lock(engine: Engine, job_id: uuid.UUID) -> Iterator[bool]:
    """Yields True when this process holds the job, False when another runner does."""
    if engine.dialect.name == "postgresql":
        with _postgres_lock(engine, job_id) as acquired:
            yield acquired
        return
    database = engine.url.database
    if database and database != ":memory:":
        lock_dir = Path(database).resolve().parent / "locks"
    else:
        lock_dir = Path(tempfile.gettempdir()) / "ctrlgenaug-locks"
    with _file_lock(lock_dir, job_id) as acquired:
        yield acquired
