"""The append-only audit trail: who did what to which unit, when, and what it changed.

Each entry's hash covers its content (run_pk included) and the previous entry's hash, so editing,
inserting or deleting an entry in the database breaks the chain at that point and `audit verify`
names it. The chain alone cannot tell that the newest entries were deleted, or that someone
edited an entry and recomputed every hash after it; so the head (the newest entry's id and hash)
is kept in `audit_head` with an HMAC under a key that lives in the data directory, not in the
database. Without the key the head cannot be moved, and `audit verify` checks that the chain
ends exactly there.

Entries written before run_pk was hashed (no "v" in their detail) verify with the content they
were hashed with: their run_pk is not covered.

The hashing and the verification are pure functions; `AuditTrail` is the thin storage shell over
the `audit` table. Appends are serialized (a lock in this process, an advisory lock on PostgreSQL
for several processes) because two appends reading the same previous hash would fork the chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import JsonValue

from aggregator.models import AuditEntry, AuditHead

GENESIS = "0" * 64
"""The previous hash of the first entry."""

_PG_LOCK_KEY = 0x5E7_A0D17
"""Advisory lock id serializing appends between aggregator processes on one PostgreSQL."""
HASH_VERSION = 2
"""Entries hashed with run_pk carry {"v": 2} in their detail; older ones have no "v"."""
KEY_FILE = "audit.key"


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
    run_pk: int | None = None
    version: int = HASH_VERSION


def canonical(
    *,
    time: float,
    user: str,
    action: str,
    unit_id: str | None,
    run_id: str | None,
    old: JsonValue,
    new: JsonValue,
    run_pk: int | None = None,
    version: int = HASH_VERSION,
) -> str:
    """The exact text that is hashed; sorted keys so the same content always hashes the same."""
    content: dict[str, Any] = {
        "time": time,
        "user": user,
        "action": action,
        "unit_id": unit_id,
        "run_id": run_id,
        "old": old,
        "new": new,
    }
    if version >= 2:
        content.update(v=version, run_pk=run_pk)
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


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
            run_pk=record.run_pk,
            version=record.version,
        ),
    )


def head_mac(key: bytes, last_id: int, last_hash: str) -> str:
    return hmac.new(
        key, f"setpoint audit head\n{last_id}\n{last_hash}".encode(), hashlib.sha256
    ).hexdigest()


@dataclass(frozen=True)
class Head:
    last_id: int
    last_hash: str
    mac: str


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


def verify_head(
    verified: Verification, last: AuditRecord | None, head: Head | None, key: bytes
) -> Verification:
    """After an intact chain: does it end exactly at the anchored head?"""
    if not verified.ok:
        return verified
    if head is None:
        if last is None:
            return verified
        return Verification(
            False,
            verified.checked,
            last.id,
            "the head of the trail is not anchored (no audit_head row): the newest entries "
            "may have been removed (an aggregator anchors it when it starts)",
        )
    if not hmac.compare_digest(head.mac, head_mac(key, head.last_id, head.last_hash)):
        return Verification(
            False,
            verified.checked,
            head.last_id,
            "the anchored head's HMAC does not match: the head was altered, or this is not "
            "the audit key of the aggregator that wrote the trail",
        )
    if last is None or last.id != head.last_id or last.hash != head.last_hash:
        ends = "is empty" if last is None else f"ends at entry {last.id}"
        return Verification(
            False,
            verified.checked,
            head.last_id,
            f"the trail {ends}, but its anchored head is entry {head.last_id} with another "
            "hash: newest entries were removed, or the chain was recomputed after an edit",
        )
    return verified


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
        run_pk=None if row.run_pk is None else int(row.run_pk),
        version=int(detail["v"]) if isinstance(detail.get("v"), int) else 1,
    )


def new_key_file(path: Path) -> bytes:
    """Create the audit key, readable by its owner only; an existing one is kept as it is."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_key_file(path)
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
    return key


def read_key_file(path: Path) -> bytes:
    """The key as written by `new_key_file`; ValueError with one line when unusable."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read the audit key {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ValueError(f"the audit key {path} is not a key written by setpoint-aggregator")
    return key


class AuditTrail:
    """Appends to and reads the `audit` table. Safe to call from worker threads.

    With a `key`, every append also moves the anchored head; without one (tests, embedding)
    the head is left alone, so a keyed `verify` then reports the entries after it."""

    def __init__(self, engine: sa.Engine, *, key: bytes | None = None) -> None:
        self._engine = engine
        self._key = key
        self._table: sa.Table = AuditEntry.__table__  # type: ignore[attr-defined]
        self._head: sa.Table = AuditHead.__table__  # type: ignore[attr-defined]
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
            time=time,
            user=user,
            action=action,
            unit_id=unit_id,
            run_id=run_id,
            old=old,
            new=new,
            run_pk=run_pk,
        )
        detail = json.dumps(
            {"run_id": run_id, "old": old, "new": new, "v": HASH_VERSION}, sort_keys=True
        )
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
            if self._key is not None:
                self._write_head(conn, int(new_id), digest)
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
            run_pk=run_pk,
        )

    def _write_head(self, conn: sa.Connection, last_id: int, last_hash: str) -> None:
        assert self._key is not None
        values = {
            "last_id": last_id,
            "last_hash": last_hash,
            "mac": head_mac(self._key, last_id, last_hash),
        }
        head = self._head
        if conn.execute(head.update().where(head.c.id == 1).values(**values)).rowcount == 0:
            conn.execute(head.insert().values(id=1, **values))

    def anchor(self) -> bool:
        """Anchor the head of a trail that has none yet (a database from before anchoring, or
        a fresh one); True when it did. An existing head is never moved here: only appends
        move it, so a trail cut short since stays detectable."""
        if self._key is None:
            raise ValueError("anchoring the audit head needs the audit key")
        table = self._table
        with self._lock, self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            if conn.execute(sa.select(self._head.c.id)).first() is not None:
                return False
            last = conn.execute(
                sa.select(table.c.id, table.c.hash).order_by(table.c.id.desc()).limit(1)
            ).first()
            if last is None:
                return False
            self._write_head(conn, int(last.id), str(last.hash))
            return True

    def head(self) -> Head | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(self._head).where(self._head.c.id == 1)).first()
        if row is None:
            return None
        return Head(int(row.last_id), str(row.last_hash), str(row.mac))

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

    def verify(self, attempts: int = 5) -> Verification:
        """The chain, and with the key also its anchored head. A running aggregator may append
        while the chain is walked: the walk is repeated until the head stayed where it was."""
        if self._key is None:
            return verify_chain(self.iter_all())
        for _ in range(attempts):
            before = self.head()
            last: list[AuditRecord] = []
            result = verify_chain(_remember_last(self.iter_all(), last))
            if not result.ok or self.head() == before:
                break
        return verify_head(result, last[0] if last else None, before, self._key)


def _remember_last(
    records: Iterable[AuditRecord], last: list[AuditRecord]
) -> Iterable[AuditRecord]:
    for record in records:
        last[:] = [record]
        yield record
