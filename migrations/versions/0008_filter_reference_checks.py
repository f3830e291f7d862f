"""the filter's reference checks (issue 17): each clip's nearest real training clip, its share of frames on the
real manifold and the two verdicts; what a job's checks ran against

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 01:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLIP_COLUMNS = ("real_distance", "real_clip", "manifold_share", "memorised", "off_manifold")


def upgrade() -> None:
    op.add_column("clips", sa.Column("real_distance", sa.Float(), nullable=True))
    op.add_column("clips", sa.Column("real_clip", sa.String(length=200), nullable=True))
    op.add_column("clips", sa.Column("manifold_share", sa.Float(), nullable=True))
    op.add_column("clips", sa.Column("memorised", sa.Boolean(), nullable=True))
    op.add_column("clips", sa.Column("off_manifold", sa.Boolean(), nullable=True))
    op.add_column("jobs", sa.Column("filter_checks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("filter_checks")
    with op.batch_alter_table("clips") as batch:
        for column in reversed(CLIP_COLUMNS):
            batch.drop_column(column)
