"""What the app holds for its lifetime; tests build it with their own servers and a recording task sender."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from store.db import build_engine, build_sessionmaker
from store.objects import ObjectStore, build_object_store
from store.outbox import TaskSender
from store.settings import Settings

MotionExtractor = Callable[[np.ndarray], np.ndarray]
OBJECTS_ROUTE = "/v1/objects"


@dataclass
class ServiceState:
    settings: Settings
    signing_secret: str
    sessionmaker: sessionmaker[Session]
    object_store: ObjectStore
    send_task: TaskSender
    check_broker: Callable[[], None]
    extract_motion: MotionExtractor


def object_signature(secret: str, key: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def local_url_signer(settings: Settings, secret: str) -> Callable[[str, int], str]:
    """Signed, expiring download URLs of the API for the local object folder (what S3 presigning does)."""

    def sign(key: str, expires_s: int) -> str:
        expires = int(time.time()) + expires_s
        query = urlencode({"expires": expires, "signature": object_signature(secret, key, expires)})
        return f"{settings.api_public_url or ''}{OBJECTS_ROUTE}/{quote(key)}?{query}"

    return sign


def celery_sender(broker_url: str) -> TaskSender:
    """Send by task name through a bare Celery client: the API does not import the worker package."""
    from celery import Celery

    client = Celery("ctrlgenaug-api", broker=broker_url)

    def send(task: str, payload: dict[str, Any]) -> None:
        client.send_task(task, kwargs=payload)

    return send


def broker_checker(broker_url: str) -> Callable[[], None]:
    def check() -> None:
        from kombu import Connection

        with Connection(broker_url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)

    return check


def default_motion_extractor(frames: np.ndarray) -> np.ndarray:
    from generator.motion import extract_motion_field

    return extract_motion_field(frames)


def build_state(
    settings: Settings,
    *,
    object_store: ObjectStore | None = None,
    send_task: TaskSender | None = None,
    check_broker: Callable[[], None] | None = None,
    extract_motion: MotionExtractor | None = None,
) -> ServiceState:
    engine = build_engine(settings.resolved_database_url)
    secret = settings.signing_secret()
    return ServiceState(
        settings=settings,
        signing_secret=secret,
        sessionmaker=build_sessionmaker(engine),
        object_store=object_store or build_object_store(
            settings, url_signer=local_url_signer(settings, secret)
        ),
        send_task=send_task or celery_sender(settings.resolved_broker_url),
        check_broker=check_broker or broker_checker(settings.resolved_broker_url),
        extract_motion=extract_motion or default_motion_extractor,
    )
