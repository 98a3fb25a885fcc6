"""managed alarms and notifications (issue 17): the alarm journal and current state per unit,
users' notification choices and push subscriptions, undeliverable notifications for admins, and
each unit's escalation list

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alarm_journal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("engine_id", sa.String(length=256), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("previous", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("shelved_until", sa.Float(), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alarm_journal_run_pk", "alarm_journal", ["run_pk"])
    op.create_index("ix_alarm_journal_engine_time", "alarm_journal", ["engine_id", "time"])
    op.create_table(
        "alarm_current",
        sa.Column("engine_id", sa.String(length=256), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("unack_since", sa.Float(), nullable=True),
        sa.Column("escalated", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("value_json", sa.Text(), nullable=False),
        sa.Column("shelved_until", sa.Float(), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("run_pk", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("engine_id", "name"),
    )
    op.create_table(
        "notification_prefs",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("prefs_json", sa.Text(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "push_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.String(length=256), nullable=False),
        sa.Column("auth", sa.String(length=64), nullable=False),
        sa.Column("created", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("endpoint"),
    )
    op.create_index("ix_push_subscription_user_id", "push_subscription", ["user_id"])
    op.create_table(
        "notification_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notification_failure_time", "notification_failure", ["time"])
    op.create_table(
        "unit_escalation",
        sa.Column("unit_id", sa.String(length=256), nullable=False),
        sa.Column("users_json", sa.Text(), nullable=False),
        sa.Column("updated", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("unit_id"),
    )


def downgrade() -> None:
    op.drop_table("unit_escalation")
    op.drop_index("ix_notification_failure_time", table_name="notification_failure")
    op.drop_table("notification_failure")
    op.drop_index("ix_push_subscription_user_id", table_name="push_subscription")
    op.drop_table("push_subscription")
    op.drop_table("notification_prefs")
    op.drop_table("alarm_current")
    op.drop_index("ix_alarm_journal_engine_time", table_name="alarm_journal")
    op.drop_index("ix_alarm_journal_run_pk", table_name="alarm_journal")
    op.drop_table("alarm_journal")
