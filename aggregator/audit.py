"""The append-only audit trail: who did what to which unit, when, and what it changed.

Each entry's hash covers its content and the previous entry's hash, so editing, inserting or
deleting an entry in the database breaks the chain at that point and `audit verify` names it.
(Deleting only the newest entries cannot be told from a shorter trail; a site that needs that
copies the newest hash elsewhere.)

The hashing and the verification are pure functions; `AuditTrail` is the thin storage shell over
the `audit` table. Appends are serialized (a lock in this process, an advisory lock on PostgreSQL
for several processes) because two appends reading the same previous hash would fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import JsonValue

from aggregator.models import AuditEntry

GENESIS = "0" * 64
"""The previous hash of the first entry."""

_PG_LOCK_KEY = 0x5E7_A0D17
"""Advisory lock id serializing appends between aggregator processes on one PostgreSQL."""


@dataclass(frozen=True)
class AuditRecord:
    id: int
    time: float
    user: str
    action: str
    unit_id: str | None
    run_id: str | None
    old: JsonValue
    new: JsonValue
    prev_hash: str
    hash: str


def canonical(
    *,
    time: float,
    user: str,
    action: str,
    unit_id: str | None,
    run_id: str | None,
    old: JsonValue,
    new: JsonValue,
) -> str:
    """The exact text that is hashed; sorted keys so the same content always hashes the same."""
    return json.dumps(
        {
            "time": time,
            "user": user,
            "action": action,
            "unit_id": unit_id,
            "run_id": run_id,
            "old": old,
            "new": new,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + content).encode()).hexdigest()


def record_hash(record: AuditRecord) -> str:
    return chain_hash(
        record.prev_hash,
        canonical(
            time=record.time,
            user=record.user,
            action=record.action,
            unit_id=record.unit_id,
            run_id=record.run_id,
            old=record.old,
            new=record.new,
        ),
    )


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    bad_id: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"audit trail intact: {self.checked} entries"
        return f"audit trail broken at entry {self.bad_id}: {self.reason}"


def verify_chain(records: Iterable[AuditRecord]) -> Verification:
    """Walk the entries in append order; stop at the first that does not fit."""
    prev = GENESIS
    checked = 0
    for record in records:
        if record.prev_hash != prev:
            return Verification(
                False,
                checked,
                record.id,
                "its previous hash does not match the entry before it "
                "(an entry was removed, inserted or altered before this one)",
            )
        if record_hash(record) != record.hash:
            return Verification(False, checked, record.id, "its content does not match its hash")
        prev = record.hash
        checked += 1
    return Verification(True, checked)


def _row_to_record(row: Any) -> AuditRecord:
    try:
        detail = json.loads(row.detail_json or "{}")
    except ValueError:
        detail = {"unreadable": row.detail_json}
    if not isinstance(detail, dict):
        detail = {"unreadable": row.detail_json}
    return AuditRecord(
        id=int(row.id),
        time=float(row.time),
        user=str(row.user),
        action=str(row.action),
        unit_id=row.unit_id,
        run_id=detail.get("run_id"),
        old=detail.get("old"),
        new=detail.get("new"),
        prev_hash=str(row.prev_hash),
        hash=str(row.hash),
    )


class AuditTrail:
    """Appends to and reads the `audit` table. Safe to call from worker threads."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._table: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
        self._lock = threading.Lock()

    def append(
        self,
        *,
        time: float,
        user: str,
        action: str,
        unit_id: str | None = None,
        run_id: str | None = None,
        run_pk: int | None = None,
        old: JsonValue = None,
        new: JsonValue = None,
    ) -> AuditRecord:
        table = self._table
        content = canonical(
            time=time, user=user, action=action, unit_id=unit_id, run_id=run_id, old=old, new=new
        )
        detail = json.dumps({"run_id": run_id, "old": old, "new": new}, sort_keys=True)
        with self._lock, self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            last = conn.execute(
                sa.select(table.c.hash).order_by(table.c.id.desc()).limit(1)
            ).scalar_one_or_none()
            prev = last if last is not None else GENESIS
            digest = chain_hash(prev, content)
            new_id = conn.execute(
                table.insert()
                .values(
                    time=time,
                    user=user,
                    action=action,
                    unit_id=unit_id,
                    run_pk=run_pk,
                    detail_json=detail,
                    prev_hash=prev,
                    hash=digest,
                )
                .returning(table.c.id)
            ).scalar_one()
        return AuditRecord(
            id=int(new_id),
            time=time,
            user=user,
            action=action,
            unit_id=unit_id,
            run_id=run_id,
            old=old,
            new=new,
            prev_hash=prev,
            hash=digest,
        )

    def page(self, *, before: int | None, limit: int) -> tuple[list[AuditRecord], int | None]:
        """Newest first; returns the entries and the cursor of the next (older) page."""
        table = self._table
        query = sa.select(table).order_by(table.c.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(table.c.id < before)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        records = [_row_to_record(row) for row in rows[:limit]]
        following = records[-1].id if len(rows) > limit and records else None
        return records, following

    def iter_all(self, batch: int = 1000) -> Iterable[AuditRecord]:
        table = self._table
        after = 0
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    sa.select(table).where(table.c.id > after).order_by(table.c.id).limit(batch)
                ).all()
            if not rows:
                return
            for row in rows:
                yield _row_to_record(row)
            after = int(rows[-1].id)

    def verify(self) -> Verification:
        return verify_chain(self.iter_all())
