"""Per-project webhook secrets and the signature of a delivery (docs/webhooks.md).

Only a random salt is stored; the secret is HMAC-SHA256(service secret key, project id and salt), so a copy
of the database alone does not give the secrets away. Rotating is a new salt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.audit import append_event
from store.models import WebhookSecret, utcnow

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"


def _derive(service_secret: str, project_id: uuid.UUID, salt: str) -> str:
    material = f"ctrlgenaug-webhook\n{project_id}\n{salt}".encode()
    digest = hmac.new(service_secret.encode(), material, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def webhook_secret(session: Session, project_id: uuid.UUID, service_secret: str) -> tuple[str, datetime]:
    """The project's secret and when it was made; made now (and audited) on first use. Not committed."""
    row = session.get(WebhookSecret, project_id)
    if row is None:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        values = insert(WebhookSecret).values(
            project_id=project_id, salt=secrets.token_hex(32), created_at=utcnow()
        )
        made = values.on_conflict_do_nothing(index_elements=["project_id"])
        inserted = session.scalar(made.returning(WebhookSecret.project_id)) is not None
        row = session.scalars(
            select(WebhookSecret)
            .where(WebhookSecret.project_id == project_id)
            .execution_options(populate_existing=True)
        ).one()
        if inserted:
            append_event(session, project_id, "webhook_secret.created", {})
    return _derive(service_secret, project_id, row.salt), row.created_at


def rotate_webhook_secret(
    session: Session, project_id: uuid.UUID, service_secret: str
) -> tuple[str, datetime]:
    """Replace the project's secret (deliveries from now on are signed with the new one). Not committed."""
    webhook_secret(session, project_id, service_secret)
    row = session.get_one(WebhookSecret, project_id, with_for_update=True)
    row.salt = secrets.token_hex(32)
    row.created_at = utcnow()
    append_event(session, project_id, "webhook_secret.rotated", {})
    return _derive(service_secret, project_id, row.salt), row.created_at


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: `v1=` + hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={mac}"
