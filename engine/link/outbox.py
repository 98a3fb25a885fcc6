"""Durable outbox: every stored message waits here, numbered, until the aggregator has it.

Durability guarantee (the contract the engine and the link rely on):

* `enqueue()` assigns the next `seq` and writes the frame into an open SQLite transaction. It
  does not commit, so it costs tens of microseconds and can run on the scan path.
* `flush()` commits. Once `flush()` has returned, every message enqueued before the call is in
  the WAL and survives a killed engine process (SIGKILL, crash). With `synchronous="FULL"` (the
  default) the WAL is fsynced at each commit, so it also survives an OS crash or a power loss.
  With `synchronous="NORMAL"` a power loss may roll back the last commits (never corrupt the
  file); the link's rebase on `Registered` then keeps seq numbers unique on the wire.
* A message enqueued but not yet flushed is lost by a crash, and so is its seq. Such a seq was
  never readable (`read()` returns committed rows only), so it never reached the aggregator and
  handing it out again reuses nothing anybody has seen.
* The counter lives in its own row, updated in the same transaction as the messages, so it
  survives restarts and an outbox emptied by acknowledgements: a seq is never reused.

FULL was chosen because a lab PC losing power is a normal event, and measured commit cost on
this machine (bench/bench_link.py) is a fraction of a millisecond per scan batch, small against a
100 ms scan; one commit per scan, not per message, keeps the fsync rate at the scan rate.

Not thread-bound: a lock guards the connection so `emit()` may be called from a scan thread while
the event loop reads and acknowledges.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from protocol.messages import MAX_SEQ, STORED_MESSAGE_TYPES, StoredMessage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counter (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO counter (id, last_seq) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    frame TEXT NOT NULL
);
"""

_STORED_ADAPTER: TypeAdapter[StoredMessage] = TypeAdapter(StoredMessage)

Synchronous = Literal["NORMAL", "FULL"]


@dataclass(frozen=True)
class StoredFrame:
    """One committed message as it goes on the wire."""

    seq: int
    kind: str
    frame: str


class Outbox:
    """SQLite-backed queue of numbered messages (WAL mode); see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous = "FULL",
        max_uncommitted: int = 10_000,
    ) -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.path = path
        self._max_uncommitted = max_uncommitted
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT last_seq FROM counter WHERE id = 1").fetchone()
        top = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
        # max() guards against a counter row older than the rows (never written that way, but a
        # hand-edited or restored file must still not reuse a seq).
        self._last_seq: int = max(int(row[0]), int(top))
        self._committed_seq: int = self._last_seq
        self._uncommitted = 0
        self._in_txn = False
        self._closed = False
        self._pending_at_close = 0

    # --- scan path -------------------------------------------------------------------------

    def enqueue(self, kind: type[Any], fields: dict[str, Any]) -> int:
        """Validate, number and write one message into the open transaction; returns its seq.

        Validation happens here, on the caller's stack, so an engine bug surfaces where it was
        made and never as a frame the aggregator refuses.
        """
        if kind not in STORED_MESSAGE_TYPES:
            raise TypeError(f"{kind!r} is not a stored message type")
        if "seq" in fields:
            raise TypeError("seq is assigned by the outbox; do not pass it")
        with self._lock:
            self._check_open()
            seq = self._last_seq + 1
            if seq > MAX_SEQ:
                raise OverflowError("the 64-bit sequence counter is exhausted")
            message = kind(seq=seq, **fields)
            self._begin()
            self._db.execute(
                "INSERT INTO outbox (seq, kind, frame) VALUES (?, ?, ?)",
                (seq, kind.__name__, message.model_dump_json()),
            )
            self._last_seq = seq
            self._uncommitted += 1
            if self._uncommitted >= self._max_uncommitted:
                self._commit()
            return seq

    def flush(self) -> int:
        """Commit everything enqueued so far; returns the committed high-water seq."""
        with self._lock:
            self._check_open()
            self._commit()
            return self._committed_seq

    # --- link side -------------------------------------------------------------------------

    @property
    def committed_seq(self) -> int:
        """Highest seq that is durable (and so may be sent)."""
        return self._committed_seq

    @property
    def assigned_seq(self) -> int:
        """Highest seq handed out, committed or not."""
        return self._last_seq

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        """Messages not yet acknowledged, committed or not (as at close, once closed)."""
        with self._lock:
            if self._closed:
                return self._pending_at_close
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def first_seq(self) -> int | None:
        """Lowest committed seq still held, or None when nothing is waiting."""
        with self._lock:
            self._check_open()
            row = self._db.execute(
                "SELECT MIN(seq) FROM outbox WHERE seq <= ?", (self._committed_seq,)
            ).fetchone()
            return None if row[0] is None else int(row[0])

    def read(self, after: int, limit: int, upto: int | None = None) -> list[StoredFrame]:
        """Committed messages with seq > after (and <= upto), in seq order."""
        with self._lock:
            self._check_open()
            top = self._committed_seq if upto is None else min(upto, self._committed_seq)
            rows = self._db.execute(
                "SELECT seq, kind, frame FROM outbox WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (after, top, limit),
            ).fetchall()
            return [StoredFrame(int(seq), str(kind), str(frame)) for seq, kind, frame in rows]

    def ack(self, seq: int) -> int:
        """Delete every message up to `seq` (cumulative, rule 5); returns how many went.

        Commits at once so that a restart does not resend what the aggregator already has; losing
        this commit would only cause duplicates, which the aggregator ignores (rule 6).
        """
        with self._lock:
            self._check_open()
            self._begin()
            deleted = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,)).rowcount
            self._commit()
            return int(deleted)

    def rebase(self, above: int) -> int:
        """Renumber so that every held message and every future seq is > `above`.

        Used when the aggregator has stored more than this outbox ever numbered: the data
        directory was wiped, or a power loss under synchronous=NORMAL rolled the counter back.
        Messages keep their order; returns the shift applied (0 when none was needed).
        """
        with self._lock:
            self._check_open()
            self._commit()
            if above <= self._last_seq:
                return 0
            first = self._db.execute("SELECT MIN(seq) FROM outbox").fetchone()[0]
            self._begin()
            if first is None:
                shift = above - self._last_seq
            else:
                shift = above + 1 - int(first)
                rows = self._db.execute(
                    "SELECT seq, frame FROM outbox ORDER BY seq DESC"
                ).fetchall()
                for seq, frame in rows:
                    message = _STORED_ADAPTER.validate_json(frame)
                    moved = message.model_copy(update={"seq": int(seq) + shift})
                    self._db.execute(
                        "UPDATE outbox SET seq = ?, frame = ? WHERE seq = ?",
                        (int(seq) + shift, moved.model_dump_json(), int(seq)),
                    )
            self._last_seq += shift
            self._uncommitted += 1
            self._commit()
            return shift

    def close(self) -> None:
        """Commit what is pending and close; the file stays for the next start."""
        with self._lock:
            if self._closed:
                return
            self._commit()
            self._pending_at_close = int(
                self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
            )
            self._db.close()
            self._closed = True

    # --- internals -------------------------------------------------------------------------

    def _begin(self) -> None:
        if not self._in_txn:
            self._db.execute("BEGIN IMMEDIATE")
            self._in_txn = True

    def _commit(self) -> None:
        if not self._in_txn:
            return
        if self._uncommitted:
            self._db.execute("UPDATE counter SET last_seq = ? WHERE id = 1", (self._last_seq,))
        self._db.execute("COMMIT")
        self._in_txn = False
        self._uncommitted = 0
        self._committed_seq = self._last_seq

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"outbox {self.path} is closed")
