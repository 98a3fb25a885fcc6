"""sample_chunk summary columns (min/max with times, first/last), backfilled from the blobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 12:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aggregator.chunks import SUMMARY_COLUMNS, chunk_summary, decode_chunk

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 500


def upgrade() -> None:
    with op.batch_alter_table("sample_chunk") as batch:
        batch.add_column(sa.Column("v_kind", sa.String(length=1), nullable=True))
        for name in SUMMARY_COLUMNS[1:]:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))
    chunk = sa.table(
        "sample_chunk",
        sa.column("id", sa.Integer()),
        sa.column("data", sa.LargeBinary()),
        sa.column("v_kind", sa.String()),
        *(sa.column(name, sa.Float()) for name in SUMMARY_COLUMNS[1:]),
    )
    conn = op.get_bind()
    update = (
        chunk.update()
        .where(chunk.c.id == sa.bindparam("chunk_id"))
        .values({name: sa.bindparam(name) for name in SUMMARY_COLUMNS})
    )
    last_id = -1
    while True:
        # keyset pages: a site's years of chunks never sit in memory at once
        rows = conn.execute(
            sa.select(chunk.c.id, chunk.c.data)
            .where(chunk.c.id > last_id)
            .order_by(chunk.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        last_id = rows[-1].id
        params = [
            {"chunk_id": row.id, **chunk_summary(decode_chunk(bytes(row.data)))} for row in rows
        ]
        params = [p for p in params if p["v_kind"] is not None]
        if params:
            conn.execute(update, params)


def downgrade() -> None:
    with op.batch_alter_table("sample_chunk") as batch:
        for name in SUMMARY_COLUMNS:
            batch.drop_column(name)
