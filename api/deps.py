"""FastAPI dependencies: the service state, a database session per request, the caller's project."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.errors import field_error
from api.state import ServiceState
from store.keys import authenticate
from store.models import Project
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


def current_project(
    session: Annotated[Session, Depends(get_session)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Project:
    if credentials is None or credentials.scheme.lower() != "bearer":
        error = field_error(401, ["header", "Authorization"], "missing API key (Authorization: Bearer <key>)")
    else:
        project = authenticate(session, credentials.credentials)
        if project is not None:
            return project
        error = field_error(401, ["header", "Authorization"], "invalid or revoked API key")
    error.headers = {"WWW-Authenticate": "Bearer"}
    raise error


SessionDep = Annotated[Session, Depends(get_session)]
StateDep = Annotated[ServiceState, Depends(get_state)]
StoreDep = Annotated[ObjectStore, Depends(get_object_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ProjectDep = Annotated[Project, Depends(current_project)]
