"""The FastAPI application: `create_app(settings)`; `uvicorn api.main:app` uses the environment's settings."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline

from api import console
from api.errors import install_error_handlers
from api.limits import BodySizeLimitMiddleware
from api.metrics import MetricsMiddleware, ServiceMetrics
from api.openapi_docs import install_operation_docs, operation_id
from api.routers import assets, audit, clips, datasets, jobs, objects, retention, system, webhooks
from api.state import MotionExtractor, build_state
from store.objects import ObjectStore
from store.outbox import TaskSender
from store.provenance import software_version
from store.settings import Settings, get_settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024
DOCS_ASSETS_ROUTE = "/docs-assets"


def create_app(
    settings: Settings | None = None,
    *,
    object_store: ObjectStore | None = None,
    send_task: TaskSender | None = None,
    check_broker: Callable[[], None] | None = None,
    extract_motion: MotionExtractor | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    state = build_state(
        settings,
        object_store=object_store,
        send_task=send_task,
        check_broker=check_broker,
        extract_motion=extract_motion,
    )
    # Swagger UI and ReDoc assets from the installed fastapi-offline package: /docs works without internet
    app = FastAPIOffline(
        title="Ctrl-GenAug",
        version=software_version(),
        description="Synthetic, quality-filtered databases of medical sequences (Ctrl-GenAug).",
        static_url=DOCS_ASSETS_ROUTE,
        generate_unique_id_function=operation_id,
    )
    app.state.service = state
    install_operation_docs(app)
    install_error_handlers(app)
    app.state.metrics = ServiceMetrics(state.sessionmaker)
    for router in (
        system.router,
        assets.router,
        jobs.router,
        retention.router,
        clips.router,
        datasets.router,
        audit.router,
        objects.router,
        webhooks.router,
    ):
        app.include_router(router)
    app.include_router(console.router)
    app.add_api_route("/", lambda: RedirectResponse("/console", status_code=303), include_in_schema=False)
    app.mount(console.STATIC_ROUTE, console.static_files(), name="console-static")
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def app_from_environment() -> FastAPI:
    return create_app()
