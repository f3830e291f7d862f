"""Helpers of the console tests: other test folders' modules imported by path, and the running console."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from sqlalchemy.orm import Session, sessionmaker

from store.objects import S3ObjectStore

TESTS = Path(__file__).resolve().parents[1]


def load_test_module(name: str, path: Path) -> ModuleType:
    """Import a file of another test folder as pytest would: with its folder on sys.path (for its helpers)."""
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


service_files = load_test_module("console_service_files", TESTS / "service" / "service_files.py")


@dataclass
class Console:
    """The app under uvicorn, with a project key and the registered tiny model."""

    base_url: str
    api_key: str
    model_name: str
    store: S3ObjectStore
    sessions: sessionmaker[Session]

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}
