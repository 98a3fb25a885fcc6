"""Managed alarms as stored: the journal of every transition and each alarm's current state.

The engine decides every transition (it evaluates the alarms, and works without us); the store
only records them. `apply` runs on the writer thread inside the batch's transaction, so a
transition is journaled exactly once however often the engine resends it (rule 6), and what it
returns reaches the live side only after the commit. Current state is kept in its own table so a
page, the escalation timer and a restarted aggregator read it without replaying the journal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from aggregator import models as m
from aggregator.store.rows import AlarmJournalRow, AlarmStateRow
from protocol import AlarmEvent, AlarmState, AlarmsUpdated

T_JOURNAL: sa.Table = SQLModel.metadata.tables[str(m.AlarmJournalEntry.__tablename__)]
T_CURRENT: sa.Table = SQLModel.metadata.tables[str(m.AlarmCurrent.__tablename__)]
T_RUN: sa.Table = SQLModel.metadata.tables[str(m.Run.__tablename__)]

UNACKNOWLEDGED = frozenset({AlarmState.UNACK_ACTIVE.value, AlarmState.RTN_UNACK.value})
MAX_PAGE = 1000


@dataclass
class AlarmChange:
    """What one stored AlarmsUpdated changed, for the live side: the events (notifications
    read them) and the resulting current rows (pages show them)."""

    engine_id: str
    run_id: str | None
    snapshot: bool
    events: list[AlarmEvent]
    current: list[AlarmStateRow] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    """Alarms a snapshot no longer lists."""


def _current_row(
    engine_id: str, event: AlarmEvent, run_pk: int | None, held: Any
) -> dict[str, Any]:
    unack = event.state.value in UNACKNOWLEDGED
    was_unack = held is not None and held.state in UNACKNOWLEDGED
    if unack and was_unack:
        since, escalated = held.unack_since, held.escalated
    elif unack:
        since, escalated = event.time, 0
    else:
        since, escalated = None, 0
    return {
        "engine_id": engine_id,
        "name": event.name,
        "state": event.state.value,
        "active": event.active,
        "time": event.time,
        "unack_since": since,
        "escalated": escalated,
        "user": event.user,
        "comment": event.comment,
        "value_json": json.dumps(event.value),
        "shelved_until": event.shelved_until,
        "priority": event.priority.value,
        "message": event.message,
        "run_pk": run_pk,
    }


def _journal_row(engine_id: str, seq: int, run_pk: int | None, e: AlarmEvent) -> dict[str, Any]:
    return {
        "engine_id": engine_id,
        "run_pk": run_pk,
        "seq": seq,
        "name": e.name,
        "state": e.state.value,
        "previous": e.previous.value,
        "active": e.active,
        "time": e.time,
        "cause": e.cause.value,
        "user": e.user,
        "comment": e.comment,
        "value_json": json.dumps(e.value),
        "shelved_until": e.shelved_until,
        "priority": e.priority.value,
        "message": e.message,
    }


def apply(conn: Connection, engine_id: str, run_pk: int | None, msg: AlarmsUpdated) -> AlarmChange:
    """Journal the transitions and update the current state. A snapshot (engine start) replaces
    what was held: it is journaled only where it differs from it (an alarm that changed while
    the engine was down, or a new one), and alarms it does not list are removed."""
    held = {
        row.name: row
        for row in conn.execute(sa.select(T_CURRENT).where(T_CURRENT.c.engine_id == engine_id))
    }
    change = AlarmChange(engine_id, msg.run_id, msg.snapshot, list(msg.events))
    journal = []
    latest: dict[str, dict[str, Any]] = {}
    for event in msg.events:
        before = held.get(event.name)
        if not msg.snapshot or before is None or before.state != event.state.value:
            journal.append(_journal_row(engine_id, msg.seq, run_pk, event))
        prior = _Row(latest[event.name]) if event.name in latest else before
        row = _current_row(engine_id, event, run_pk, prior)
        latest[event.name] = row
    if journal:
        conn.execute(T_JOURNAL.insert(), journal)
    if msg.snapshot:
        change.removed = sorted(set(held) - set(latest))
        conn.execute(T_CURRENT.delete().where(T_CURRENT.c.engine_id == engine_id))
        if latest:
            conn.execute(T_CURRENT.insert(), list(latest.values()))
    else:
        for name, row in latest.items():
            if name in held:
                conn.execute(
                    T_CURRENT.update()
                    .where(T_CURRENT.c.engine_id == engine_id, T_CURRENT.c.name == name)
                    .values(**row)
                )
            else:
                conn.execute(T_CURRENT.insert().values(**row))
    change.current = [current_view(row) for row in latest.values()]
    return change


class _Row:
    """A current row not yet written, read like a fetched one (two events of one alarm in a
    message)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.state = row["state"]
        self.unack_since = row["unack_since"]
        self.escalated = row["escalated"]


def current_view(row: Any) -> AlarmStateRow:
    """A current-state row (fetched or about to be written) as the API shows it."""
    col: Any = row if isinstance(row, dict) else row._mapping
    return AlarmStateRow(
        unit_id=col["engine_id"],
        name=col["name"],
        state=col["state"],
        active=bool(col["active"]),
        priority=col["priority"],
        message=col["message"] or "",
        time=col["time"],
        unack_since=col["unack_since"],
        escalated=col["escalated"] or 0,
        user=col["user"],
        comment=col["comment"],
        value=json.loads(col["value_json"] or "null"),
        shelved_until=col["shelved_until"],
    )


class AlarmQueries:
    """Reads (any thread) and the few writes made outside ingest (writer thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def current(self, engine_ids: list[str] | None = None) -> list[AlarmStateRow]:
        query = sa.select(T_CURRENT).order_by(T_CURRENT.c.engine_id, T_CURRENT.c.name)
        if engine_ids is not None:
            query = query.where(T_CURRENT.c.engine_id.in_(engine_ids))
        with self.engine.connect() as conn:
            return [current_view(row) for row in conn.execute(query)]

    def journal(
        self,
        engine_ids: list[str],
        *,
        since: float | None = None,
        until: float | None = None,
        run_id: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> tuple[list[AlarmJournalRow], int | None]:
        """Newest first, `limit` at most; the second value is the cursor of the next page."""
        j = T_JOURNAL
        query = (
            sa.select(j, T_RUN.c.run_id)
            .select_from(j.outerjoin(T_RUN, T_RUN.c.pk == j.c.run_pk))
            .where(j.c.engine_id.in_(engine_ids))
            .order_by(j.c.id.desc())
            .limit(min(limit, MAX_PAGE) + 1)
        )
        if since is not None:
            query = query.where(j.c.time >= since)
        if until is not None:
            query = query.where(j.c.time < until)
        if run_id is not None:
            query = query.where(T_RUN.c.run_id == run_id)
        if before is not None:
            query = query.where(j.c.id < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        entries = [
            AlarmJournalRow(
                id=row.id,
                unit_id=row.engine_id,
                run_id=row.run_id,
                name=row.name,
                state=row.state,
                previous=row.previous,
                active=bool(row.active),
                time=row.time,
                cause=row.cause,
                user=row.user,
                comment=row.comment,
                value=json.loads(row.value_json or "null"),
                shelved_until=row.shelved_until,
                priority=row.priority,
                message=row.message,
            )
            for row in rows
        ]
        return entries, (int(rows[-1].id) if more and rows else None)

    def remove(self, engine_id: str, names: list[str]) -> None:
        """Forget alarms the unit's UOD no longer declares (writer thread)."""
        if not names:
            return
        with self.engine.begin() as conn:
            conn.execute(
                T_CURRENT.delete().where(
                    T_CURRENT.c.engine_id == engine_id, T_CURRENT.c.name.in_(names)
                )
            )

    def set_escalated(self, engine_id: str, name: str, unack_since: float, level: int) -> None:
        """Record an escalation step, unless the alarm became unacknowledged anew meanwhile
        (writer thread)."""
        with self.engine.begin() as conn:
            conn.execute(
                T_CURRENT.update()
                .where(
                    T_CURRENT.c.engine_id == engine_id,
                    T_CURRENT.c.name == name,
                    T_CURRENT.c.unack_since == unack_since,
                )
                .values(escalated=level)
            )
