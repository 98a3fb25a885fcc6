"""Durable outbox: every stored message waits here, numbered, until the aggregator has it.

Durability guarantee (the contract the engine and the link rely on):

* `enqueue()` validates the message, assigns the next `seq` and keeps the frame in memory. It
  never touches the disk, so it costs microseconds and can run on the scan path.
* `flush()` writes everything enqueued before the call in one SQLite transaction and commits.
  Once `flush()` has returned those messages survive a killed engine process (SIGKILL, crash)
  and, with `synchronous="FULL"` (the default), an OS crash or a power loss: the WAL is fsynced
  at each commit. With `synchronous="NORMAL"` a power loss may roll back commits made since the
  last checkpoint (the file stays consistent); the link's rebase on `Registered` then keeps seq
  numbers unique on the wire.
* `flush()` may run in another thread than `enqueue()`: the link commits in a worker thread once
  per event-loop iteration that emitted something (one commit per scan), so the scan never waits
  for an fsync. A message enqueued but not yet committed when the process dies is lost, and so
  is its seq: it was never readable (`read()` returns committed rows only), so it never reached
  the aggregator, and handing the number out again reuses nothing anybody has seen.
* The counter lives in its own row, written in the same transaction as the messages, so it
  survives restarts and an outbox emptied by acknowledgements: a committed seq is never reused.
* The frames of the latest commits are also kept in memory (at most `RECENT` of them, only
  committed ones), so that the link can send what was just committed without a trip to its read
  thread and SQLite (`read_recent`, which answers only when it can answer exactly as `read`).
* `ack()` only records the acknowledgement in memory (reads skip acknowledged rows at once); the
  rows are deleted by the next commit. A crash in between resends them, and the aggregator acknowledges
  and ignores what it already has (rule 6).

Why FULL: a lab PC losing power is a normal event and data written during an outage exists
nowhere else. Measured (bench/bench_link.py, see bench/README.md) a FULL commit of one scan's
messages costs milliseconds on this VM, tens under load: too slow for the scan thread, which is
why commits run in the worker thread, and cheap enough at one commit per scan.
"""

from __future__ import annotations

import functools
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


@functools.cache
def _stored_adapter() -> TypeAdapter[StoredMessage]:
    """Built on first use (a rebase, rare): building the stored messages' union at import cost
    every engine start ~3 ms and 0.5 MB (issue 15 item 3)."""
    return TypeAdapter(StoredMessage)


Synchronous = Literal["NORMAL", "FULL"]

RECENT = 256
"""Committed frames kept in memory for `read_recent`: a few seconds of a running engine."""


@dataclass(frozen=True)
class StoredFrame:
    """One committed message as it goes on the wire."""

    seq: int
    kind: str
    frame: str


class Outbox:
    """SQLite-backed queue of numbered messages (WAL mode); see the module docstring.

    Two connections: the writer (commits, under `_write_lock`) and the reader used by the link
    for `read`/`first_seq`/`pending`, so that reading never waits for a commit's fsync.
    """

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
        self._lock = threading.Lock()  # the in-memory buffer and counters
        self._write_lock = threading.RLock()  # the writer connection, commits in seq order
        self._read_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        row = self._db.execute("SELECT last_seq FROM counter WHERE id = 1").fetchone()
        top = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
        # max() guards against a counter row older than the rows (never written that way, but a
        # hand-edited or restored file must still not reuse a seq).
        self._last_seq: int = max(int(row[0]), int(top))
        self._committed_seq: int = self._last_seq
        self._acked: int = 0
        self._deleted: int = 0
        self._buffer: list[tuple[int, str, str]] = []
        self._recent: list[StoredFrame] = []  # committed, consecutive seqs up to _committed_seq
        self._committing = 0
        self._closed = False
        self._pending_at_close = 0

    # --- scan path -------------------------------------------------------------------------

    def enqueue(self, kind: type[Any], fields: dict[str, Any]) -> int:
        """Validate and number one message, kept in memory until the next flush; returns seq.

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
            frame = kind(seq=seq, **fields).model_dump_json()
            self._buffer.append((seq, kind.__name__, frame))
            self._last_seq = seq
            full = len(self._buffer) >= self._max_uncommitted
        if full:  # the disk is not keeping up: make the caller wait rather than grow memory
            self.flush()
        return seq

    def flush(self) -> int:
        """Commit everything enqueued so far and apply acks; returns the committed high water.

        Blocking (an fsync under FULL); safe from any thread.
        """
        with self._write_lock:
            with self._lock:
                self._check_open()
                batch, self._buffer = self._buffer, []
                acked = self._acked
                self._committing = len(batch)
            if not batch and acked <= self._deleted:
                return self._committed_seq
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if batch:
                    self._db.executemany(
                        "INSERT INTO outbox (seq, kind, frame) VALUES (?, ?, ?)", batch
                    )
                    self._db.execute(
                        "UPDATE counter SET last_seq = ? WHERE id = 1", (batch[-1][0],)
                    )
                if acked > self._deleted:
                    self._db.execute("DELETE FROM outbox WHERE seq <= ?", (acked,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                with self._lock:  # keep the messages for the next attempt, in order
                    self._buffer[:0] = batch
                    self._committing = 0
                raise
            with self._lock:
                self._committing = 0
                self._deleted = acked
                if batch:
                    self._committed_seq = batch[-1][0]
                    self._remember(batch)
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
        if self._closed:
            return self._pending_at_close
        with self._lock:  # a batch being committed is counted twice for a moment, never 0 times
            buffered = len(self._buffer) + self._committing
            acked = self._acked
        return buffered + self._count_stored(acked)

    def first_seq(self) -> int | None:
        """Lowest committed, unacknowledged seq, or None when nothing is waiting."""
        with self._read_lock:
            self._check_open()
            row = self._reader.execute(
                "SELECT MIN(seq) FROM outbox WHERE seq > ? AND seq <= ?",
                (self._acked, self._committed_seq),
            ).fetchone()
            return None if row[0] is None else int(row[0])

    def read(self, after: int, limit: int, upto: int | None = None) -> list[StoredFrame]:
        """Committed, unacknowledged messages with seq > after (and <= upto), in seq order."""
        top = self._committed_seq if upto is None else min(upto, self._committed_seq)
        with self._read_lock:
            self._check_open()
            rows = self._reader.execute(
                "SELECT seq, kind, frame FROM outbox WHERE seq > ? AND seq <= ? "
                "ORDER BY seq LIMIT ?",
                (max(after, self._acked), top, limit),
            ).fetchall()
        return [StoredFrame(int(seq), str(kind), str(frame)) for seq, kind, frame in rows]

    def read_recent(
        self, after: int, limit: int, upto: int | None = None
    ) -> list[StoredFrame] | None:
        """What `read` would return, from the frames of the latest commits, on the caller's
        thread and without SQLite; None when they do not cover the span (then call `read`)."""
        with self._lock:
            self._check_open()
            top = self._committed_seq if upto is None else min(upto, self._committed_seq)
            start = max(after, self._acked)
            if limit < 0:
                return None  # SQLite reads a negative LIMIT as none at all
            if start >= top or limit == 0:
                return []
            recent = self._recent
            if not recent or recent[0].seq > start + 1:
                return None
            first = start + 1 - recent[0].seq
            return recent[first : first + min(limit, top - start)]

    def _remember(self, batch: list[tuple[int, str, str]]) -> None:
        """Keeps a committed batch's frames for `read_recent` (caller holds `_lock`)."""
        recent = self._recent
        if recent and recent[-1].seq + 1 != batch[0][0]:
            recent.clear()  # not consecutive (never expected): start over from this batch
        recent.extend(StoredFrame(seq, kind, frame) for seq, kind, frame in batch)
        drop = max(len(recent) - RECENT, 0)
        while drop < len(recent) and recent[drop].seq <= self._acked:
            drop += 1
        if drop:
            del recent[:drop]

    def ack(self, seq: int) -> int:
        """Everything up to `seq` is stored by the aggregator (cumulative, rule 5).

        Returns the acknowledged high mark (never above what is committed, so never something
        unsent). In memory only, so the link may call it on the event loop: reads skip the rows
        at once and the next commit deletes them.
        """
        with self._lock:
            self._check_open()
            self._acked = max(self._acked, min(seq, self._committed_seq))
            return self._acked

    def rebase(self, above: int) -> int:
        """Renumber so that every held message and every future seq is > `above`.

        Used when the aggregator has stored more than this outbox ever numbered: the data
        directory was wiped, or a power loss under synchronous=NORMAL rolled the counter back.
        Then every held message numbered <= `above` would be taken for one the aggregator has,
        including those committed or buffered after the link decided to rebase.
        Messages keep their order; returns the shift applied (0 when none was needed). Commits
        what is buffered in the same transaction. The counter moves before the commit, under
        the buffer lock, so that a message enqueued meanwhile is numbered after the renumbered
        ones (never with a number from before) and enqueue never waits for the fsync.
        """
        with self._write_lock:
            self._check_open()
            first_row = self._db.execute(
                "SELECT MIN(seq) FROM outbox WHERE seq > ?", (self._acked,)
            ).fetchone()[0]
            with self._lock:
                acked = self._acked
                if first_row is None and self._buffer:
                    first_row = self._buffer[0][0]
                base = self._last_seq if first_row is None else int(first_row) - 1
                shift = max(0, above - base)
                if shift == 0:
                    batch = None
                else:
                    batch = _renumbered(self._buffer, shift)
                    self._buffer = []
                    self._recent = []  # renumbered: the kept frames carry the old seqs
                    self._last_seq += shift
                    self._committing = len(batch)
                    last_seq = self._last_seq
            if batch is None:
                self.flush()
                return 0
            try:
                self._commit_rebase(batch, acked, shift, last_seq)
            except BaseException:
                # Like flush(): an open transaction would make every later commit fail, and the
                # numbering must keep describing the file as it still is, gap-free.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                with self._lock:
                    self._buffer = _renumbered(batch + self._buffer, -shift)
                    self._last_seq -= shift
                    self._committing = 0
                raise
            with self._lock:
                self._committing = 0
                self._committed_seq = last_seq
                self._deleted = acked
            return shift

    def _commit_rebase(
        self, batch: list[tuple[int, str, str]], acked: int, shift: int, last_seq: int
    ) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        self._db.execute("DELETE FROM outbox WHERE seq <= ?", (acked,))
        rows = self._db.execute("SELECT seq, kind, frame FROM outbox ORDER BY seq DESC").fetchall()
        for seq, _kind, frame in _renumbered(rows, shift):  # highest first: no collision
            self._db.execute(
                "UPDATE outbox SET seq = ?, frame = ? WHERE seq = ?", (seq, frame, seq - shift)
            )
        self._db.executemany("INSERT INTO outbox (seq, kind, frame) VALUES (?, ?, ?)", batch)
        self._db.execute("UPDATE counter SET last_seq = ? WHERE id = 1", (last_seq,))
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Commit what is pending and close; the file stays for the next start."""
        with self._write_lock:
            if self._closed:
                return
            self.flush()
            pending = self.pending
            with self._lock, self._read_lock:
                self._pending_at_close = pending
                self._closed = True
                self._recent = []
                self._reader.close()
                self._db.close()

    # --- internals -------------------------------------------------------------------------

    def _count_stored(self, acked: int) -> int:
        with self._read_lock:
            self._check_open()
            row = self._reader.execute(
                "SELECT COUNT(*) FROM outbox WHERE seq > ?", (acked,)
            ).fetchone()
            return int(row[0])

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"outbox {self.path} is closed")


def _renumbered(entries: list[tuple[int, str, str]], shift: int) -> list[tuple[int, str, str]]:
    """The same messages with seq moved by `shift`, inside the frame as well as beside it."""
    out = []
    for seq, kind, frame in entries:
        moved = _stored_adapter().validate_json(frame).model_copy(update={"seq": int(seq) + shift})
        out.append((int(seq) + shift, str(kind), moved.model_dump_json()))
    return out
