"""regulated records (issue 16): the method library and its versions, electronic signatures,
the library version loaded on each unit, engine clock offsets per run, and users' printed names

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch:
        batch.add_column(
            sa.Column("full_name", sa.String(length=256), nullable=False, server_default="")
        )
    op.create_table(
        "method",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "method_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("method_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("method_id", "version", name="uq_method_version"),
    )
    op.create_index("ix_method_version_method_id", "method_version", ["method_id"])
    op.create_table(
        "signature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=512), nullable=False),
        sa.Column("meaning", sa.String(length=16), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("full_name", sa.String(length=256), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("parts_json", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signature_record", "signature", ["kind", "record_id"])
    op.create_table(
        "unit_method_source",
        sa.Column("unit_id", sa.String(length=256), nullable=False),
        sa.Column("method_version_id", sa.Integer(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("loaded", sa.Float(), nullable=False),
        sa.Column("loaded_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("unit_id"),
    )
    op.create_table(
        "run_clock_offset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=False),
        sa.Column("engine_id", sa.String(length=256), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("offset", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_run_clock_offset_run_pk", "run_clock_offset", ["run_pk"])


def downgrade() -> None:
    op.drop_index("ix_run_clock_offset_run_pk", table_name="run_clock_offset")
    op.drop_table("run_clock_offset")
    op.drop_table("unit_method_source")
    op.drop_index("ix_signature_record", table_name="signature")
    op.drop_table("signature")
    op.drop_index("ix_method_version_method_id", table_name="method_version")
    op.drop_table("method_version")
    op.drop_table("method")
    with op.batch_alter_table("user_account") as batch:
        batch.drop_column("full_name")
