"""A database transaction plus the objects written for it: objects go first, and are removed on failure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from sqlalchemy.orm import Session

from store.objects import ObjectInfo, ObjectStore


class StagedObjects:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.created: list[str] = []

    def put(
        self, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Write an object; an object already there (content-addressed keys) is left as it is."""
        if self.store.exists(key):
            return self.store.stat(key)
        info = self.store.put(key, data, content_type=content_type)
        self.created.append(key)
        return info

    def keep(self, *keys: str) -> None:
        """Leave these objects in place on failure: a row committed by someone else points to them."""
        self.created = [key for key in self.created if key not in keys]

    def discard(self) -> None:
        for key in reversed(self.created):
            self.store.delete(key)
        self.created.clear()


@contextmanager
def unit_of_work(session: Session, store: ObjectStore) -> Iterator[StagedObjects]:
    """Commit the session when the block succeeds; otherwise roll back and delete the objects it created."""
    staged = StagedObjects(store)
    try:
        yield staged
        session.commit()
    except BaseException:
        session.rollback()
        staged.discard()
        raise
