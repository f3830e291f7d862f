"""API key scopes, per-project asset retention, the checksums a bank keeps of a deleted asset

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 01:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# keys made before scopes existed could do everything: they keep every scope
ALL_SCOPES = '["jobs:write", "read", "audit:read"]'


def upgrade() -> None:
    op.add_column(
        "api_keys", sa.Column("scopes", sa.JSON(), nullable=False, server_default=sa.text(f"'{ALL_SCOPES}'"))
    )
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", server_default=None)
    op.add_column("projects", sa.Column("asset_retention_days", sa.Integer(), nullable=True))
    op.add_column("banks", sa.Column("image_prior_sha256", sa.String(length=64), nullable=True))
    op.add_column("banks", sa.Column("motion_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("banks") as batch:
        batch.drop_column("motion_sha256")
        batch.drop_column("image_prior_sha256")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("asset_retention_days")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("scopes")
