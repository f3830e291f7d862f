"""The webhook sender: POSTs due deliveries of the webhook outbox (store.webhooks), signed with the project's
secret, and records each attempt; a failed attempt is retried with exponential backoff until
`webhook_max_attempts`, then the delivery is `failed`. Jobs never wait for it."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import WebhookDelivery, WebhookStatus, utcnow
from store.provenance import software_version
from store.webhook_secrets import sign, webhook_secret
from store.webhook_urls import HostUnresolved, WebhookUrlRefused, checked_addresses
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)

# Posts (url, body, headers) and returns the receiver's status code; raises httpx.HTTPError when it got none.
Poster = Callable[[str, bytes, dict[str, str]], int]
# A claimed delivery is left alone by other senders this long past the receiver's timeout.
CLAIM_MARGIN_S = 60.0


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    project_id: uuid.UUID
    event: str
    url: str
    body: str
    attempts: int


def backoff_s(attempts: int, base_s: float, max_s: float) -> float:
    """The wait after the `attempts`-th failed attempt: base, 2 × base, 4 × base … at most `max_s`."""
    return float(min(max_s, base_s * 2 ** (attempts - 1)))


def httpx_poster(timeout_s: float) -> Poster:
    """Posts without following redirects or environment proxies, and without reading the response body."""

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            with client.stream("POST", url, content=body, headers=headers) as response:
                return response.status_code

    return post


def _claim(sessions: sessionmaker[Session], settings: WorkerSettings, now: datetime) -> Claimed | None:
    with sessions() as session:
        row = session.scalar(
            select(WebhookDelivery)
            .where(WebhookDelivery.status == WebhookStatus.pending, WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if row is None:
            return None
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=settings.webhook_timeout_s + CLAIM_MARGIN_S)
        claimed = Claimed(row.id, row.project_id, row.event, row.url, row.body, row.attempts)
        session.commit()
        return claimed


def _headers(session: Session, claimed: Claimed, service_secret: str) -> dict[str, str]:
    secret, _ = webhook_secret(session, claimed.project_id, service_secret)
    session.commit()
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": f"ctrlgenaug-webhooks/{software_version()}",
        "X-CtrlGenAug-Event": claimed.event,
        "X-CtrlGenAug-Delivery": str(claimed.id),
        "X-CtrlGenAug-Timestamp": str(timestamp),
        "X-CtrlGenAug-Signature": sign(secret, timestamp, claimed.body.encode()),
    }


def _attempt(
    sessions: sessionmaker[Session], settings: WorkerSettings, claimed: Claimed, post: Poster
) -> tuple[int | None, str | None, bool]:
    """POST once; returns (status code, error, whether to try again)."""
    try:
        checked_addresses(claimed.url, settings.webhook_allow_private_hosts)
    except WebhookUrlRefused as exc:
        return None, f"refused: {exc}", isinstance(exc, HostUnresolved)
    with sessions() as session:
        headers = _headers(session, claimed, settings.signing_secret())
    try:
        code = post(claimed.url, claimed.body.encode(), headers)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}", True
    if 200 <= code < 300:
        return code, None, False
    return code, f"the receiver answered {code}", True


def _record(
    sessions: sessionmaker[Session],
    settings: WorkerSettings,
    claimed: Claimed,
    outcome: tuple[int | None, str | None, bool],
) -> WebhookStatus | None:
    """Record an attempt's outcome; returns the delivery's status (None: it no longer exists)."""
    code, error, retry = outcome
    with sessions() as session:
        row = session.get(WebhookDelivery, claimed.id, with_for_update=True)
        if row is None:  # its job was deleted meanwhile
            return None
        row.last_status_code = code
        row.last_error = error
        now = utcnow()
        if error is None:
            row.status, row.delivered_at, row.next_attempt_at = WebhookStatus.delivered, now, None
        elif retry and claimed.attempts < settings.webhook_max_attempts:
            base, most = settings.webhook_backoff_base_s, settings.webhook_backoff_max_s
            row.next_attempt_at = now + timedelta(seconds=backoff_s(claimed.attempts, base, most))
        else:
            row.status, row.next_attempt_at = WebhookStatus.failed, None
        status = row.status
        session.commit()
    if status == WebhookStatus.failed:
        logger.warning("webhook delivery %s failed at attempt %d: %s", claimed.id, claimed.attempts, error)
    return status


def deliver_due(
    sessions: sessionmaker[Session], settings: WorkerSettings, post: Poster, limit: int = 100
) -> int:
    """Attempt up to `limit` due deliveries, one at a time; returns how many were attempted."""
    attempted = 0
    while attempted < limit:
        claimed = _claim(sessions, settings, utcnow())
        if claimed is None:
            break
        _record(sessions, settings, claimed, _attempt(sessions, settings, claimed, post))
        attempted += 1
    return attempted


class WebhookSender(threading.Thread):
    """Runs `deliver_due` every `webhook_poll_interval_s` in the background until `stop()`."""

    def __init__(self, sessions: sessionmaker[Session], settings: WorkerSettings) -> None:
        super().__init__(name="webhook-sender", daemon=True)
        self.sessions = sessions
        self.settings = settings
        self.post = httpx_poster(settings.webhook_timeout_s)
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.settings.webhook_poll_interval_s):
            try:
                deliver_due(self.sessions, self.settings, self.post)
            except Exception:  # noqa: BLE001 - the sender keeps going; the next round retries
                logger.exception("webhook sender round failed")

    def stop(self) -> None:
        self._stopped.set()
