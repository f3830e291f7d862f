"""job quality figures against the model's data build; the patient of each registered dataset clip

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 22:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("quality", sa.JSON(), nullable=True))
    op.add_column("dataset_clips", sa.Column("patient_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dataset_clips") as batch:
        batch.drop_column("patient_id")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("quality")
