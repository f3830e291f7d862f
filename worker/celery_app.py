"""The Celery app of the workers, configured from the service settings.

Late acknowledgement + reject-on-worker-lost + prefetch 1: a job whose worker dies is delivered again
(Redis: after the visibility timeout, which must outlast the task time limit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals
from kombu.utils.url import url_to_parts

from worker.context import WorkerContext
from worker.dispatch import send_via_celery
from worker.monitor import SHUTDOWN
from worker.settings import WorkerSettings

REDIS_SCHEMES = ("redis", "rediss", "redis+socket")


class ContextHolder:
    """The worker context, built on first use in the process that runs tasks (not at import)."""

    def __init__(self, factory: Callable[[], WorkerContext]) -> None:
        self._factory = factory
        self._context: WorkerContext | None = None
        self._lock = threading.Lock()

    def get(self) -> WorkerContext:
        with self._lock:
            if self._context is None:
                self._context = self._factory()
            return self._context

    def set(self, context: WorkerContext) -> None:
        with self._lock:
            self._context = context


def celery_config(settings: WorkerSettings) -> dict[str, Any]:
    broker_url = settings.resolved_broker_url
    config: dict[str, Any] = {
        "broker_url": broker_url,
        "task_default_queue": settings.task_queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": settings.task_time_limit_s,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }
    if url_to_parts(broker_url).scheme in REDIS_SCHEMES:
        config["broker_transport_options"] = {"visibility_timeout": settings.broker_visibility_timeout_s}
    return config


def visibility_timeout(app: Celery) -> float | None:
    """The effective broker visibility timeout of `app` (None: the transport has none)."""
    value = (app.conf.broker_transport_options or {}).get("visibility_timeout")
    return None if value is None else float(value)


def create_celery_app(settings: WorkerSettings, context: WorkerContext | None = None) -> Celery:
    from worker.tasks import register_tasks

    app = Celery("ctrlgenaug", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.ctrlgenaug_settings = settings  # type: ignore[attr-defined]
    holder = ContextHolder(lambda: WorkerContext.from_settings(settings, send_via_celery(app)))
    if context is not None:
        holder.set(context)
    app.ctrlgenaug_context = holder  # type: ignore[attr-defined]
    register_tasks(app)
    return app


@signals.worker_shutting_down.connect(weak=False)
def _stop_jobs_between_steps(**_: Any) -> None:
    SHUTDOWN.set()
