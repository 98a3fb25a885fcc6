"""engine_token.engine_id and revoked_at: a token is bound to one engine id and can be revoked

A token that exactly one engine has registered with so far is bound to that engine's id; a token
shared by several engines (allowed before) stays unbound, and binds to the first engine id that
registers with it after the upgrade (docs/site.md, Engine tokens).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("engine_token") as batch:
        batch.add_column(sa.Column("engine_id", sa.String(length=256), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.Float(), nullable=True))
    op.create_index("ix_engine_token_engine_id", "engine_token", ["engine_id"])
    conn = op.get_bind()
    token = sa.table("engine_token", sa.column("name", sa.String), sa.column("engine_id"))
    engine = sa.table("engine", sa.column("id", sa.String), sa.column("token_name", sa.String))
    sole = (
        sa.select(engine.c.token_name, sa.func.min(engine.c.id).label("engine_id"))
        .where(engine.c.token_name != "")
        .group_by(engine.c.token_name)
        .having(sa.func.count() == 1)
    )
    for name, engine_id in conn.execute(sole).all():
        conn.execute(token.update().where(token.c.name == name).values(engine_id=engine_id))


def downgrade() -> None:
    op.drop_index("ix_engine_token_engine_id", table_name="engine_token")
    with op.batch_alter_table("engine_token") as batch:
        batch.drop_column("revoked_at")
        batch.drop_column("engine_id")
