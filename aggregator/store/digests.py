"""Digests of the stored engine messages (rule 6), packed so that they cost bytes, not rows.

Exactly-once storage does not depend on these: a frame is stored only when its seq is the next
after `engine_seq.last_seq` (aggregator.ingest_session), so a resend of a stored frame is never
stored twice, whether or not its digest is still here. The digest only lets a resent copy be
compared with the first one, so that a copy that differs is reported (an integrity error) and
the first copy kept. A frame can be resent after it was stored only while the engine has not
received its Ack: at most its window of unacknowledged frames (live and replay, engine/link),
so digests are kept for the last DIGEST_RETENTION seqs of each engine and no more.

Layout: one `received_digest` row per engine and block of BLOCK consecutive seqs
(block = seq // BLOCK), whose `slots` blob holds SLOT bytes per seq at (seq % BLOCK) * SLOT:
one byte naming the message kind (0: nothing stored under that seq, e.g. a recorded gap; bit
0x80: the digest is of the older `protocol.content_digest` form) and the first 8 bytes of the
message's digest. 8 bytes are plenty to tell a differing copy (a false match needs a 2^-64
collision) and the block row costs its key once for 64 digests: about 9.6 bytes per digest
against ~153 for the row-per-message table it replaces (migration 0012).

Written on the writer thread only; the block being filled of each engine is cached so that a
batch writes it without reading it first. The cache is dropped with the other writer caches
after a failed transaction (`reset`) and per engine when it registers (another node may have
written its blocks meanwhile)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.store.tables import T_DIGEST, T_SEQ
from protocol import StoredMessage, content_digest

BLOCK = 64
"""Seqs per row."""
SLOT = 9
"""Bytes per seq: kind byte + 8 digest bytes."""
OLD_FORM = 0x80
"""Kind-byte flag: the digest is a protocol.content_digest (written by older aggregators and
some tests), compared with that function's digest of the resent copy."""

DIGEST_RETENTION = 2_500
"""Digests kept per engine for rule 6: a resend reaches back at most to the engine's
unacknowledged frames (2 x 1000, live and replay, in the link's default policy); anything older
is at or below Registered.last_seq and never resent."""

KIND_CODES = {
    "TagsUpdated": 1,
    "RunStarted": 2,
    "RunStopped": 3,
    "RunLog": 4,
    "Method": 5,
    "MethodState": 6,
    "ControlState": 7,
    "ErrorLog": 8,
    "AlarmsUpdated": 9,
}
"""Stored in the database: codes never change meaning; a new kind gets a new code."""
OTHER_KIND = 0x7F

Received = tuple[str, int, str, str]
"""(engine_id, seq, kind, digest) of a message just stored."""


def short_digest(digest: str) -> bytes:
    """The 8 bytes kept of a digest: the first 8 bytes of a `2:` BLAKE2b digest, else of a
    BLAKE2b of the text (a content_digest, or anything else)."""
    if digest.startswith("2:") and len(digest) >= 18:
        return bytes.fromhex(digest[2:18])
    return hashlib.blake2b(digest.encode(), digest_size=8).digest()


def slot(kind: str, digest: str) -> bytes:
    code = KIND_CODES.get(kind, OTHER_KIND)
    if not digest.startswith("2:"):
        code |= OLD_FORM
    return bytes([code]) + short_digest(digest)


class Digests:
    """The packed digest table, with the writer's cache of each engine's open block."""

    def __init__(self, paramstyle: str) -> None:
        mark = "?" if paramstyle == "qmark" else "%s"
        self._upsert = (
            "INSERT INTO received_digest (engine_id, block, slots) "
            f"VALUES ({mark}, {mark}, {mark}) "
            "ON CONFLICT (engine_id, block) DO UPDATE SET slots = excluded.slots"
        )
        self._open: dict[str, tuple[int, bytearray]] = {}
        self._pruned: dict[str, int] = {}
        """Per engine, the first block kept by our last prune: until it moves (every 64 seqs)
        there is nothing to delete, and 100 engines' deletes every 10 s were a measurable
        share of the aggregator's CPU."""

    def reset(self) -> None:
        self._open.clear()
        self._pruned.clear()

    def forget(self, engine_id: str) -> None:
        """The engine (re)registers: read its blocks again (another node may have written)."""
        self._open.pop(engine_id, None)
        self._pruned.pop(engine_id, None)

    def record(self, conn: Connection, received: Sequence[Received]) -> None:
        """Store the digests of a batch's messages (one upsert per engine and block)."""
        touched: dict[tuple[str, int], bytearray] = {}
        for engine_id, seq, kind, digest in received:
            block, index = divmod(seq, BLOCK)
            key = (engine_id, block)
            slots = touched.get(key)
            if slots is None:
                slots = touched[key] = self._block(conn, engine_id, block)
            slots[index * SLOT : (index + 1) * SLOT] = slot(kind, digest)
        if touched:
            conn.exec_driver_sql(
                self._upsert, [(e, b, bytes(slots)) for (e, b), slots in touched.items()]
            )
        # Cache each engine's highest block: the next batch most likely writes into it.
        for (engine_id, block), slots in touched.items():
            cached = self._open.get(engine_id)
            if cached is None or cached[0] <= block:
                self._open[engine_id] = (block, slots)

    def _block(self, conn: Connection, engine_id: str, block: int) -> bytearray:
        cached = self._open.get(engine_id)
        if cached is not None and cached[0] == block:
            return cached[1]
        stored = _read_block(conn, engine_id, block)
        return bytearray(stored) if stored is not None else bytearray(BLOCK * SLOT)

    def prune(self, conn: Connection, retention: int = DIGEST_RETENTION) -> None:
        """Forget the blocks wholly older than the last `retention` seqs of each engine."""
        for row in conn.execute(sa.select(T_SEQ.c.engine_id, T_SEQ.c.last_seq)).all():
            first_kept = max(0, row.last_seq - retention) // BLOCK
            if self._pruned.get(row.engine_id) == first_kept:
                continue
            conn.execute(
                T_DIGEST.delete().where(
                    T_DIGEST.c.engine_id == row.engine_id, T_DIGEST.c.block < first_kept
                )
            )
            self._pruned[row.engine_id] = first_kept


def _read_block(conn: Connection, engine_id: str, block: int) -> bytes | None:
    return conn.execute(
        sa.select(T_DIGEST.c.slots).where(
            T_DIGEST.c.engine_id == engine_id, T_DIGEST.c.block == block
        )
    ).scalar()


def stored_slot(conn: Connection, engine_id: str, seq: int) -> bytes | None:
    """The slot kept for a seq, or None when none is (never stored, a gap, or pruned)."""
    block, index = divmod(seq, BLOCK)
    slots = _read_block(conn, engine_id, block)
    if slots is None or len(slots) < (index + 1) * SLOT:
        return None
    found = bytes(slots[index * SLOT : (index + 1) * SLOT])
    return None if found[0] == 0 else found


def same_as_stored(stored: bytes, message: StoredMessage, digest: str) -> bool:
    """Whether a resent message says what the stored slot says (either digest form)."""
    if stored[0] & OLD_FORM:
        return stored[1:] == short_digest(content_digest(message))
    return stored[1:] == short_digest(digest)


def stored_seqs(conn: Connection, engine_id: str) -> list[int]:
    """The seqs whose digests are kept, in order (for checks and tests)."""
    return [seq for seq, _ in _slots(conn, engine_id, 0)]


def stored_since(conn: Connection, engine_id: str, kind: str, seq: int) -> bool:
    """Whether a message of this kind with a higher seq is among the digests kept."""
    code = KIND_CODES.get(kind, OTHER_KIND)
    return any(
        found > seq and entry[0] & ~OLD_FORM == code
        for found, entry in _slots(conn, engine_id, seq // BLOCK)
    )


def _slots(conn: Connection, engine_id: str, first_block: int) -> Iterable[tuple[int, bytes]]:
    rows = conn.execute(
        sa.select(T_DIGEST.c.block, T_DIGEST.c.slots)
        .where(T_DIGEST.c.engine_id == engine_id, T_DIGEST.c.block >= first_block)
        .order_by(T_DIGEST.c.block)
    ).all()
    for block, slots in rows:
        data = bytes(slots)
        for index in range(len(data) // SLOT):
            entry = data[index * SLOT : (index + 1) * SLOT]
            if entry[0]:
                yield block * BLOCK + index, entry
