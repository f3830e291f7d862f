"""job phase, sampling batch and ETA in progress

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 23:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PHASES = ("loading_model", "preparing_conditions", "sampling", "filtering", "exporting")


def upgrade() -> None:
    op.add_column(
        "jobs",
        sa.Column("phase", sa.Enum(*PHASES, name="jobphase", native_enum=False, length=32), nullable=True),
    )
    op.add_column("jobs", sa.Column("batch", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("batches", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("eta_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for column in ("eta_seconds", "batches", "batch", "phase"):
            batch.drop_column(column)
