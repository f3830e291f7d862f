"""Liveness, readiness, service info, models and Prometheus metrics."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import select, text

from api.deps import SessionDep, StateDep
from api.errors import ERROR_RESPONSES, not_found
from api.schemas import Health, Info, ModelDetailOut, ModelOut, Ready, ReadyCheck
from store.models import ModelRecord
from store.provenance import SOFTWARE_NAME, software_version
from store.registry import find_model, read_model_quality

router = APIRouter()


@router.get("/v1/health", response_model=Health, tags=["system"])
def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/v1/ready", response_model=Ready, tags=["system"], responses={503: {"model": Ready}})
def ready(state: StateDep, response: Response) -> Ready:
    """Readiness: the database, the broker and the object store answer (503 naming the failing check)."""

    def run(check) -> ReadyCheck:  # type: ignore[no-untyped-def]
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure
            return ReadyCheck(ok=False, error=f"{type(exc).__name__}: {exc}")
        return ReadyCheck(ok=True)

    def database() -> None:
        with state.sessionmaker() as session:
            session.execute(text("SELECT 1"))

    checks = {
        "database": run(database),
        "broker": run(state.check_broker),
        "storage": run(state.object_store.ping),
    }
    is_ready = all(c.ok for c in checks.values())
    if not is_ready:
        response.status_code = 503
    return Ready(ready=is_ready, checks=checks)


def _models(session: SessionDep) -> list[ModelOut]:
    rows = session.scalars(select(ModelRecord).order_by(ModelRecord.name, ModelRecord.registered_at))
    return [ModelOut.model_validate(row) for row in rows]


@router.get("/v1/info", response_model=Info, tags=["system"])
def info(session: SessionDep, state: StateDep) -> Info:
    """Service name, version, environment and the registered models."""
    return Info(
        name=SOFTWARE_NAME,
        version=software_version(),
        environment=state.settings.environment,
        models=_models(session),
    )


@router.get("/v1/models", response_model=list[ModelOut], tags=["models"])
def list_models(session: SessionDep) -> list[ModelOut]:
    """Registered generator models: classes, frames, frame size and the conditions each accepts."""
    return _models(session)


@router.get(
    "/v1/models/{model}",
    response_model=ModelDetailOut,
    tags=["models"],
    responses={404: ERROR_RESPONSES[404]},
)
def get_model(model: str, session: SessionDep) -> ModelDetailOut:
    """One model by id, name (latest version) or name:version, with its quality card: VAE fidelity, coherence,
    precision/recall, real-classifier accuracy, prior and motion fidelity, memorisation per class and overall
    (`ctrlgenaug evaluate synthesis --write-card`)."""
    try:
        record = session.get(ModelRecord, uuid.UUID(model))
    except ValueError:
        record = find_model(session, model)
    if record is None:
        raise not_found(["path", "model"], "model")
    detail = ModelDetailOut.model_validate(record)
    detail.quality = read_model_quality(Path(record.path))
    return detail


@router.get("/metrics", tags=["system"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus metrics of the API and the job queue."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
