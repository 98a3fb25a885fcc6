"""Reading the audit trail back for review (issue 16 item 5): filtered by user, unit, run,
action and time, paged newest first for the Audit page, or streamed oldest first as CSV or JSON
for `setpoint-aggregator audit export` and the page's CSV download. Reading only; the trail
itself stays append-only (aggregator/audit.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import SQLModel

from aggregator import models as m
from aggregator.audit import AuditRecord, _row_to_record

T_AUDIT = SQLModel.metadata.tables[str(m.AuditEntry.__tablename__)]
T_RUN = SQLModel.metadata.tables[str(m.Run.__tablename__)]
COLUMNS = (
    "id",
    "time_utc",
    "time",
    "user",
    "action",
    "unit_id",
    "run_id",
    "old",
    "new",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True)
class AuditFilter:
    since: float | None = None
    until: float | None = None
    user: str | None = None
    unit_id: str | None = None
    run_id: str | None = None
    action: str | None = None

    def where(self, conn: sa.Connection) -> list[sa.ColumnElement[bool]]:
        c = T_AUDIT.c
        found: list[sa.ColumnElement[bool]] = []
        if self.since is not None:
            found.append(c.time >= self.since)
        if self.until is not None:
            found.append(c.time < self.until)
        if self.user:
            found.append(c.user == self.user)
        if self.unit_id:
            found.append(c.unit_id == self.unit_id)
        if self.action:
            found.append(c.action == self.action)
        if self.run_id:
            pk = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == self.run_id)).scalar()
            needle = json.dumps({"run_id": self.run_id})[1:-1]  # "run_id": "..."
            by_text = c.detail_json.contains(needle, autoescape=True)
            found.append(sa.or_(c.run_pk == pk, by_text) if pk is not None else by_text)
        return found


def page(
    engine: sa.Engine, where: AuditFilter, before: int | None, limit: int
) -> tuple[list[AuditRecord], int | None]:
    """Newest first; the cursor of the next (older) page."""
    with engine.connect() as conn:
        query = sa.select(T_AUDIT).where(*where.where(conn))
        if before is not None:
            query = query.where(T_AUDIT.c.id < before)
        rows = conn.execute(query.order_by(T_AUDIT.c.id.desc()).limit(limit + 1)).all()
    records = [_row_to_record(r) for r in rows[:limit]]
    return records, (records[-1].id if len(rows) > limit and records else None)


def batch_after(engine: sa.Engine, where: AuditFilter, after: int, limit: int) -> list[AuditRecord]:
    """Oldest first: the first `limit` matching entries with an id above `after`."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_AUDIT)
            .where(T_AUDIT.c.id > after, *where.where(conn))
            .order_by(T_AUDIT.c.id)
            .limit(limit)
        ).all()
    return [_row_to_record(r) for r in rows]


def iter_records(engine: sa.Engine, where: AuditFilter, batch: int = 1000) -> Iterator[AuditRecord]:
    """Oldest first, a batch at a time (memory stays bounded for a long trail)."""
    after = 0
    while records := batch_after(engine, where, after, batch):
        yield from records
        after = records[-1].id


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_row(record: AuditRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "time_utc": utc(record.time),
        "time": record.time,
        "user": record.user,
        "action": record.action,
        "unit_id": record.unit_id,
        "run_id": record.run_id,
        "old": record.old,
        "new": record.new,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def _cell(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    # a spreadsheet must show a user-typed "=..." as text, never run it as a formula
    return "'" + text if isinstance(value, str) and text[:1] in ("=", "+", "-", "@") else text


def csv_chunks(records: Iterable[AuditRecord]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for n, record in enumerate(records, 1):
        row = as_row(record)
        writer.writerow([_cell(row[c]) if c != "time" else repr(record.time) for c in COLUMNS])
        if n % 500 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def json_chunks(records: Iterable[AuditRecord]) -> Iterator[str]:
    """A JSON array, one entry per line."""
    yield "["
    for n, record in enumerate(records):
        yield ("," if n else "") + "\n" + json.dumps(as_row(record), sort_keys=True)
    yield "\n]\n"


def parse_time(text: str) -> float:
    """Unix seconds, or ISO 8601 (a date, or date and time; UTC unless it names its zone)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: give Unix seconds or ISO 8601 like 2026-12-01 or "
            "2026-12-01T08:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
