"""engine lease (issue 21): one row per engine, its epoch bumped by each registration; a node
stores an engine's frames only while it holds the current epoch (ingest fencing)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engine_lease",
        sa.Column("engine_id", sa.String(length=256), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=False),
        sa.Column("taken", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("engine_id"),
    )


def downgrade() -> None:
    op.drop_table("engine_lease")
