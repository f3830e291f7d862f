"""What a worker process holds for its lifetime: settings, database, object store, loaded models, sender."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.db import build_engine, build_sessionmaker
from store.objects import ObjectStore, build_object_store
from store.outbox import TaskSender
from worker.pipelines import PipelineCache
from worker.settings import WorkerSettings


@dataclass
class WorkerContext:
    settings: WorkerSettings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    models: PipelineCache
    send_task: TaskSender

    @classmethod
    def from_settings(
        cls,
        settings: WorkerSettings,
        send_task: TaskSender,
        *,
        object_store: ObjectStore | None = None,
        models: PipelineCache | None = None,
    ) -> WorkerContext:
        engine = build_engine(settings.resolved_database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=build_sessionmaker(engine),
            store=object_store or build_object_store(settings),
            models=models
            or PipelineCache(
                settings.resolved_device(), settings.worker_model_cache_size, settings.fast_path()
            ),
            send_task=send_task,
        )
