"""Quarantine: engine messages that were received but failed to apply, kept whole until replayed.

Why a message is acknowledged although it was not applied: the quarantine row is written in the
same transaction as the rest of the batch, so the Ack still means "durably kept here" (rule 5)
and the engine may drop its copy. The message's seq counts as stored like any other (engine_seq,
and its digest in received_digest), so the rule 6/7 checks stay as they are: a resent copy is
compared with the digest, and no gap is recorded because nothing is missing. What is missing is
only its effect on the stored runs, and the quarantine row, the engine's error log entry and
`GET /api/quarantine` say so until an admin replays it (Ingest.replay) after a fix.

The alternative, refusing to acknowledge it, would stall that engine forever on a message that
fails the same way every time it is resent, and hold every later message in its outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.store import digests
from aggregator.store.batch import BatchOp, BatchResult
from aggregator.store.tables import T_QUARANTINE
from protocol import StoredMessage

SNAPSHOT_KINDS = frozenset({"ControlState", "Method", "MethodState"})
"""Messages that say the latest state: replaying one after a newer one of the same kind was
stored would roll that state back, so such a replay is skipped as superseded."""

ERROR_CHARS = 2000


@dataclass(frozen=True)
class Quarantined:
    """A quarantined message without its body (listings)."""

    id: int
    engine_id: str
    seq: int
    kind: str
    received: float
    error: str
    attempts: int


@dataclass(frozen=True)
class Replayed:
    """What a replay did: "applied" (and removed), "superseded" (removed without applying),
    or "failed" (kept, with the new error)."""

    entry: Quarantined
    outcome: str
    error: str | None
    result: BatchResult


def failure_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc!s}"[:ERROR_CHARS]


def keep(conn: Connection, op: BatchOp, msg: StoredMessage, error: str, now: float) -> int:
    """Store the whole message with why it failed; its id."""
    result = conn.execute(
        T_QUARANTINE.insert().values(
            engine_id=op.engine_id,
            session_id=op.session_id,
            seq=msg.seq,
            kind=msg.type,
            received=now,
            error=error[:ERROR_CHARS],
            message_json=msg.model_dump_json(),
            attempts=0,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _entry(row: Any) -> Quarantined:
    return Quarantined(
        id=int(row.id),
        engine_id=str(row.engine_id),
        seq=int(row.seq),
        kind=str(row.kind),
        received=float(row.received),
        error=str(row.error),
        attempts=int(row.attempts),
    )


def load(conn: Connection, qid: int) -> tuple[Quarantined, str, str] | None:
    """(entry, session id, message JSON) of one quarantined message."""
    row = conn.execute(sa.select(T_QUARANTINE).where(T_QUARANTINE.c.id == qid)).first()
    if row is None:
        return None
    return _entry(row), str(row.session_id), str(row.message_json)


def superseded(conn: Connection, entry: Quarantined) -> bool:
    if entry.kind not in SNAPSHOT_KINDS:
        return False
    return digests.stored_since(conn, entry.engine_id, entry.kind, entry.seq)


def remove(conn: Connection, qid: int) -> None:
    conn.execute(T_QUARANTINE.delete().where(T_QUARANTINE.c.id == qid))


def failed_again(conn: Connection, qid: int, error: str) -> None:
    conn.execute(
        T_QUARANTINE.update()
        .where(T_QUARANTINE.c.id == qid)
        .values(error=error[:ERROR_CHARS], attempts=T_QUARANTINE.c.attempts + 1)
    )


class QuarantineQueries:
    """Read side, for any thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def page(
        self, *, engine_id: str | None = None, before: int | None = None, limit: int = 100
    ) -> tuple[list[Quarantined], int | None, int]:
        """Newest first: (entries, cursor of the next page or None, total count)."""
        where = [] if engine_id is None else [T_QUARANTINE.c.engine_id == engine_id]
        query = sa.select(T_QUARANTINE).where(*where).order_by(T_QUARANTINE.c.id.desc())
        if before is not None:
            query = query.where(T_QUARANTINE.c.id < before)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit + 1)).all()
            total = conn.execute(
                sa.select(sa.func.count()).select_from(T_QUARANTINE).where(*where)
            ).scalar_one()
        entries = [_entry(r) for r in rows[:limit]]
        following = entries[-1].id if len(rows) > limit else None
        return entries, following, int(total)

    def entry(self, qid: int) -> tuple[Quarantined, str] | None:
        """One entry and its message JSON."""
        with self.engine.connect() as conn:
            found = load(conn, qid)
        return None if found is None else (found[0], found[2])

    def message_json(self, qid: int) -> str | None:
        found = self.entry(qid)
        return None if found is None else found[1]
