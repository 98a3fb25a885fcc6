"""Notification data: each person's choices and browser push subscriptions, each unit's
escalation list, and the notifications that could not be delivered (for admins).

Writes run on the writer thread (callers use Writer.call), reads on any thread."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from aggregator import models as m
from aggregator.store.rows import DeliveryFailureRow
from aggregator.store.tables import T_USER

T_PREFS: sa.Table = SQLModel.metadata.tables[str(m.NotificationPrefs.__tablename__)]
T_PUSH: sa.Table = SQLModel.metadata.tables[str(m.PushSubscription.__tablename__)]
T_FAILURE: sa.Table = SQLModel.metadata.tables[str(m.NotificationFailure.__tablename__)]
T_ESCALATION: sa.Table = SQLModel.metadata.tables[str(m.UnitEscalation.__tablename__)]

TEXT_CHARS = 2000
FAILURES_KEPT = 10_000


@dataclass(frozen=True)
class Person:
    """A user with notification choices (prefs_json as stored)."""

    user_id: int
    name: str
    role: str
    prefs_json: str


@dataclass(frozen=True)
class PushRow:
    id: int
    user_id: int
    endpoint: str
    p256dh: str
    auth: str


class NotificationStore:
    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self._clock = clock

    # --- choices ----------------------------------------------------------------------------------

    def people(self) -> list[Person]:
        """Every user who has saved choices, with their current role."""
        query = sa.select(T_PREFS.c.user_id, T_USER.c.name, T_USER.c.role, T_PREFS.c.prefs_json)
        query = query.select_from(T_PREFS.join(T_USER, T_USER.c.id == T_PREFS.c.user_id))
        with self.engine.connect() as conn:
            return [
                Person(int(r.user_id), r.name, r.role, r.prefs_json) for r in conn.execute(query)
            ]

    def person(self, name: str) -> Person | None:
        """A user by name, with their choices ("{}" when none saved)."""
        query = (
            sa.select(T_USER.c.id, T_USER.c.name, T_USER.c.role, T_PREFS.c.prefs_json)
            .select_from(T_USER.outerjoin(T_PREFS, T_PREFS.c.user_id == T_USER.c.id))
            .where(T_USER.c.name == name)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Person(int(row.id), row.name, row.role, row.prefs_json or "{}")

    def prefs(self, user_id: int) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                sa.select(T_PREFS.c.prefs_json).where(T_PREFS.c.user_id == user_id)
            ).scalar()

    def save_prefs(self, user_id: int, prefs_json: str) -> None:
        now = self._clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                T_PREFS.update()
                .where(T_PREFS.c.user_id == user_id)
                .values(prefs_json=prefs_json, updated=now)
            ).rowcount
            if not done:
                conn.execute(
                    T_PREFS.insert().values(user_id=user_id, prefs_json=prefs_json, updated=now)
                )

    # --- web push subscriptions -------------------------------------------------------------------

    def push_subscriptions(self, user_id: int) -> list[PushRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_PUSH).where(T_PUSH.c.user_id == user_id).order_by(T_PUSH.c.id)
            ).all()
        return [PushRow(r.id, r.user_id, r.endpoint, r.p256dh, r.auth) for r in rows]

    def add_push(self, user_id: int, endpoint: str, p256dh: str, auth: str) -> None:
        """A browser's subscription; the same endpoint again (re-subscribed, or now another
        person's browser) replaces the old row."""
        with self.engine.begin() as conn:
            conn.execute(T_PUSH.delete().where(T_PUSH.c.endpoint == endpoint))
            conn.execute(
                T_PUSH.insert().values(
                    user_id=user_id,
                    endpoint=endpoint,
                    p256dh=p256dh,
                    auth=auth,
                    created=self._clock(),
                )
            )

    def remove_push(self, endpoint: str, user_id: int | None = None) -> bool:
        query = T_PUSH.delete().where(T_PUSH.c.endpoint == endpoint)
        if user_id is not None:
            query = query.where(T_PUSH.c.user_id == user_id)
        with self.engine.begin() as conn:
            return bool(conn.execute(query).rowcount)

    # --- failures ---------------------------------------------------------------------------------

    def add_failure(
        self, channel: str, user: str, recipient: str, subject: str, error: str, attempts: int
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                T_FAILURE.insert().values(
                    time=self._clock(),
                    channel=channel,
                    user=user[:128],
                    recipient=recipient[:TEXT_CHARS],
                    subject=subject[:TEXT_CHARS],
                    error=error[:TEXT_CHARS],
                    attempts=attempts,
                )
            )
            newest = conn.execute(sa.select(sa.func.max(T_FAILURE.c.id))).scalar() or 0
            if newest > FAILURES_KEPT and newest % 100 == 0:
                conn.execute(T_FAILURE.delete().where(T_FAILURE.c.id <= newest - FAILURES_KEPT))

    def failures(
        self, before: int | None, limit: int
    ) -> tuple[list[DeliveryFailureRow], int | None, int]:
        """Newest first; (page, cursor of the next page, count of all kept)."""
        query = sa.select(T_FAILURE).order_by(T_FAILURE.c.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(T_FAILURE.c.id < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            total = conn.execute(sa.select(sa.func.count()).select_from(T_FAILURE)).scalar()
        more = len(rows) > limit
        rows = rows[:limit]
        return (
            [DeliveryFailureRow.from_row(r) for r in rows],
            int(rows[-1].id) if more and rows else None,
            int(total or 0),
        )

    # --- escalation lists -------------------------------------------------------------------------

    def escalation(self, unit_id: str) -> tuple[list[str], float, str]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_ESCALATION).where(T_ESCALATION.c.unit_id == unit_id)
            ).first()
        if row is None:
            return [], 0.0, ""
        return list(json.loads(row.users_json)), float(row.updated), row.updated_by

    def set_escalation(self, unit_id: str, users: list[str], by: str) -> None:
        now = self._clock()
        values = {"users_json": json.dumps(users), "updated": now, "updated_by": by}
        with self.engine.begin() as conn:
            done = conn.execute(
                T_ESCALATION.update().where(T_ESCALATION.c.unit_id == unit_id).values(**values)
            ).rowcount
            if not done:
                conn.execute(T_ESCALATION.insert().values(unit_id=unit_id, **values))
