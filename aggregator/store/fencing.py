"""Ingest fencing (issue 21): two aggregator nodes can never both store frames of one engine.

An engine is linked to one node at a time, but a node does not always know at once that it
lost the engine: a NATS partition hides the new holder's news, a stalled process wakes up with
frames still queued for its writer. Without a fence such a node would go on committing frames
the engine is also resending to its new node (rows stored twice, or a unique-key failure that
fails the new node's whole batch).

The fence is one `engine_lease` row per engine. Each registration bumps its epoch, under a row
lock, before it reads the engine's high-water mark; each ingest batch, in its own transaction,
takes a share lock on the lease rows of its engines and compares their epochs with the ones this
node took. So:
- a batch of the old node that is already inside its transaction holds the share lock: the new
  node's registration waits for it to commit, and then reads a last_seq that counts its frames
  (the cross-node takeover waits for the old node's in-flight commits, as a local takeover waits
  for the old connection to drain);
- a batch that starts after the registration sees the new epoch and is refused as a whole
  (`Fenced`): nothing of it is written, the writer fails that engine's connection, and the
  engine's durable outbox resends the unacknowledged frames to the node that holds it.

A node that stalls inside a batch's transaction (a stopped process, a hung thread) must not
hold the engine for ever: the batch's transaction ends itself on the server after
`idle_timeout` seconds of client silence (PostgreSQL's idle_in_transaction_session_timeout, set
for that transaction only), and a registration waits at most `lock_timeout` seconds for the lease
(it runs on the writer thread, which every engine of the new node shares); it is then refused and
the engine retries.

SQLite has one aggregator process per file (one writer thread): nothing to fence, and the check
costs a query per batch, so it is off there.

Who may import it: aggregator.store (ingest) and aggregator.writer (Fenced); it uses only
sqlalchemy and the table definitions.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from aggregator import models as m

T_LEASE = SQLModel.metadata.tables[str(m.EngineLease.__tablename__)]


_CHECK = (
    "WITH t AS (SELECT set_config('idle_in_transaction_session_timeout', %s, true)) "
    "SELECT l.engine_id, l.epoch, l.holder FROM engine_lease l, t "
    "WHERE l.engine_id = ANY(%s) ORDER BY l.engine_id FOR SHARE OF l"
)
"""The batch's check (PostgreSQL only): ends the transaction on the server if the client falls
silent in it, and share-locks the engines' lease rows in one order on every node."""


class Fenced(Exception):
    """The batch holds frames of engines whose lease another registration took since this node
    took it: the transaction is rolled back, nothing of the batch is stored."""

    def __init__(self, engine_ids: Iterable[str], holders: dict[str, str]) -> None:
        self.engine_ids = frozenset(engine_ids)
        self.holders = holders
        named = ", ".join(f"{e} (now {holders.get(e, '?')})" for e in sorted(self.engine_ids))
        super().__init__(f"lease lost for engine(s) {named}; their frames are refused here")


def default_holder() -> str:
    """Who took a lease, for people reading the table: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Leases:
    """This process's epochs of the engines it registered (kept on the writer thread)."""

    def __init__(
        self,
        *,
        enabled: bool,
        holder: str | None = None,
        lock_timeout: float = 2.0,
        idle_timeout: float = 10.0,
    ) -> None:
        self.enabled = enabled
        self.holder = holder or default_holder()
        self.lock_timeout = lock_timeout
        self.idle_timeout = idle_timeout
        self._epochs: dict[str, int] = {}

    def take(self, conn: Connection, engine_id: str, now: float) -> bool:
        """Take the engine's lease in the registration's transaction, before its last_seq is
        read. Returns whether someone else took it since this process last did (or this
        process never did): the writer's caches of that engine may then be stale."""
        if not self.enabled:
            return False
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {round(self.lock_timeout * 1000)}")
        row = conn.execute(
            sa.select(T_LEASE.c.epoch)
            .where(T_LEASE.c.engine_id == engine_id)
            .with_for_update()  # waits for an old holder's batch in flight (its share lock)
        ).first()
        if row is None:
            epoch = 1
            conn.execute(
                T_LEASE.insert().values(
                    engine_id=engine_id, epoch=epoch, holder=self.holder, taken=now
                )
            )
        else:
            epoch = int(row.epoch) + 1
            conn.execute(
                T_LEASE.update()
                .where(T_LEASE.c.engine_id == engine_id)
                .values(epoch=epoch, holder=self.holder, taken=now)
            )
        moved = row is None or self._epochs.get(engine_id) != epoch - 1
        # Kept even if the transaction fails: the registration is then refused, and an epoch
        # that is not the row's only fences this process more, never less.
        self._epochs[engine_id] = epoch
        return moved

    def check(self, conn: Connection, engine_ids: Iterable[str]) -> None:
        """In the batch's transaction, before anything is written: raise Fenced if any of the
        engines' leases moved on. Engines this process never registered are not checked (a
        connection always registers first; tests store batches directly)."""
        if not self.enabled:
            return
        mine = {e: self._epochs[e] for e in engine_ids if e in self._epochs}
        if not mine:
            return
        # one round trip, written out: building the statement would cost more than running it
        rows = conn.exec_driver_sql(
            _CHECK, (str(round(self.idle_timeout * 1000)), sorted(mine))
        ).all()
        found = {row.engine_id: (int(row.epoch), str(row.holder)) for row in rows}
        lost = [e for e, epoch in mine.items() if found.get(e, (epoch, ""))[0] != epoch]
        if lost:
            raise Fenced(lost, {e: found[e][1] for e in lost if e in found})
