"""run prediction (issue 18): what run_model predicted for a run's method when the run started

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_prediction",
        sa.Column("run_pk", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("requested", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_pk"),
    )


def downgrade() -> None:
    op.drop_table("run_prediction")
