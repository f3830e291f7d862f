"""FastAPI dependencies: the service state, a database session per request, the caller's key and project.

Every route that takes a key names the scope it needs through one of `ProjectDep` (read),
`JobsWriteProjectDep` (jobs:write) and `AuditProjectDep` (audit:read); a key without it is a 403 naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import field_error
from api.state import ServiceState
from store.keys import AUDIT_READ, JOBS_WRITE, READ, authenticate
from store.models import ApiKey, Project
from store.objects import ObjectStore
from store.settings import Settings

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer cga_…`")


def get_state(request: Request) -> ServiceState:
    return request.app.state.service


def get_session(state: Annotated[ServiceState, Depends(get_state)]) -> Iterator[Session]:
    with state.sessionmaker() as session:
        yield session


def get_object_store(state: Annotated[ServiceState, Depends(get_state)]) -> ObjectStore:
    return state.object_store


def get_settings(state: Annotated[ServiceState, Depends(get_state)]) -> Settings:
    return state.settings


def current_key(
    session: Annotated[Session, Depends(get_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    if credentials is None or credentials.scheme.lower() != "bearer":
        error = field_error(401, ["header", "Authorization"], "missing API key (Authorization: Bearer <key>)")
    else:
        key = authenticate(session, credentials.credentials)
        if key is not None:
            return key
        error = field_error(401, ["header", "Authorization"], "invalid or revoked API key")
    error.headers = {"WWW-Authenticate": "Bearer"}
    raise error


@cache
def require_scope(scope: str) -> Callable[[ApiKey], Project]:
    """The dependency that gives the project of a key holding `scope` (one function per scope)."""

    def project_with_scope(key: Annotated[ApiKey, Depends(current_key)]) -> Project:
        if scope not in key.scopes:
            held = ", ".join(key.scopes)
            raise field_error(
                403,
                ["header", "Authorization"],
                f"this API key lacks the scope {scope} (it has {held})",
                "missing_scope",
            )
        return key.project

    return project_with_scope


SessionDep = Annotated[Session, Depends(get_session)]
StateDep = Annotated[ServiceState, Depends(get_state)]
StoreDep = Annotated[ObjectStore, Depends(get_object_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ProjectDep = Annotated[Project, Depends(require_scope(READ))]
JobsWriteProjectDep = Annotated[Project, Depends(require_scope(JOBS_WRITE))]
AuditProjectDep = Annotated[Project, Depends(require_scope(AUDIT_READ))]
