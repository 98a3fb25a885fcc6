"""Sample chunks: the ingest path stores each value as a `sample_recent` row (cheap to write in
the batch that is acked); compaction later turns a tag's recent rows into compressed chunks
(aggregator.chunks), once enough have gathered, they span or have waited long enough, or their
run has ended.

Runs on the writer thread only, so the index of recent rows kept here matches the table."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.chunks import Sample, chunk_summary, encode_chunk
from aggregator.store.tables import T_CHUNK, T_RECENT, T_RUN, row_value, stored_time

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 300
"""Compact a tag's recent samples once this many have gathered ..."""
CHUNK_SECONDS = 300.0
"""... or once they span this long (sample time), or have waited this long (wall time)."""

Series = tuple[int, int]
"""(run_pk, tag_id): the samples of one tag in one run."""


@dataclass
class _Pending:
    """What is known of a series' recent rows without reading them."""

    count: int
    t_min: float
    t_max: float
    wall_first: float


class Compactor:
    """Owns the index of recent rows per series and decides when each is compacted."""

    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self._clock = clock
        self._last_time_check = 0.0
        self.reset()

    def reset(self) -> None:
        """Forget the index; it is read again from the table on next use."""
        self._loaded = False
        self._pending: dict[Series, _Pending] = {}
        self._due: set[Series] = set()
        self._final: set[int] = set()

    def load(self, conn: Connection) -> None:
        if self._loaded:
            return
        now = self._clock()
        for row in conn.execute(
            sa.select(
                T_RECENT.c.run_pk,
                T_RECENT.c.tag_id,
                sa.func.count(),
                sa.func.min(T_RECENT.c.t),
                sa.func.max(T_RECENT.c.t),
            ).group_by(T_RECENT.c.run_pk, T_RECENT.c.tag_id)
        ):
            key = (row[0], row[1])
            self._pending[key] = _Pending(row[2], row[3], row[4], now)
            if row[2] >= CHUNK_SAMPLES:
                self._due.add(key)
        for row in conn.execute(
            sa.select(T_RUN.c.pk)
            .where(T_RUN.c.stopped.is_not(None))
            .where(T_RUN.c.pk.in_(sa.select(T_RECENT.c.run_pk).distinct()))
        ):
            self._final.add(row.pk)
        self._loaded = True

    def sample_added(self, key: Series, t: float, now: float) -> None:
        """One more recent row of the series, of sample time t, stored at wall time now."""
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(1, t, t, now)
            return
        pending.count += 1
        pending.t_min = min(pending.t_min, t)
        pending.t_max = max(pending.t_max, t)
        if pending.count >= CHUNK_SAMPLES or pending.t_max - pending.t_min >= CHUNK_SECONDS:
            self._due.add(key)

    def work_due(self, now: float) -> bool:
        """Whether `compact` may have anything to do at `now`. The writer asks this from the
        event loop while idle (plain reads of this thread-owned state, between batches), so an
        idle aggregator does not hop to the writer thread every second to find nothing due."""
        return (
            not self._loaded
            or bool(self._due)
            or bool(self._final)
            or now - self._last_time_check >= 10.0
        )

    def run_closed(self, run_pk: int) -> None:
        """A run ended: its samples are compacted on the next pass, however few."""
        self._final.add(run_pk)

    def compact(self, now: float, *, force_all: bool = False) -> int:
        """Compact recent samples into chunks where due. Returns the number of chunks written."""
        if not self._loaded:
            with self.engine.connect() as conn:
                self.load(conn)
        due = set(self._due)
        if self._final:
            due.update(key for key in self._pending if key[0] in self._final)
        if force_all:
            due.update(self._pending)
        if now - self._last_time_check >= 10.0:
            self._last_time_check = now
            due.update(k for k, r in self._pending.items() if now - r.wall_first >= CHUNK_SECONDS)
        written = 0
        if due:
            try:
                with self.engine.begin() as conn:
                    for key in sorted(due):
                        written += _compact(conn, *key)
            except Exception:
                self.reset()
                raise
            for key in due:
                self._pending.pop(key, None)
                self._due.discard(key)
            self._final.clear()
        return written


def _compact(conn: Connection, run_pk: int, tag_id: int) -> int:
    rows = conn.execute(
        sa.select(T_RECENT.c.id, T_RECENT.c.t, T_RECENT.c.num, T_RECENT.c.text, T_RECENT.c.kind)
        .where(T_RECENT.c.run_pk == run_pk, T_RECENT.c.tag_id == tag_id)
        .order_by(T_RECENT.c.t, T_RECENT.c.id)
        # Two nodes may compact one series at once (an engine moved from one to the other):
        # the second waits for the first, then finds the rows it compacted gone (PostgreSQL
        # skips rows deleted while it waited), so no sample is chunked twice.
        .with_for_update()
    ).all()
    if not rows:
        return 0
    samples: list[Sample] = [(r[1], row_value(r[4], r[2], r[3])) for r in rows]
    written = write_chunks(conn, run_pk, tag_id, samples)
    max_id = max(r.id for r in rows)
    conn.execute(
        T_RECENT.delete().where(
            T_RECENT.c.run_pk == run_pk, T_RECENT.c.tag_id == tag_id, T_RECENT.c.id <= max_id
        )
    )
    return written


def write_chunks(conn: Connection, run_pk: int, tag_id: int, samples: Sequence[Sample]) -> int:
    """Store samples (time order) as chunks of CHUNK_SAMPLES with their summaries."""
    rows = []
    samples = [(stored_time(t), v) for t, v in samples]
    for start in range(0, len(samples), CHUNK_SAMPLES):
        part = samples[start : start + CHUNK_SAMPLES]
        rows.append(
            {
                "run_pk": run_pk,
                "tag_id": tag_id,
                "t_first": part[0][0],
                "t_last": part[-1][0],
                "count": len(part),
                "data": encode_chunk(part),
                **chunk_summary(part),
            }
        )
    if rows:
        conn.execute(T_CHUNK.insert(), rows)
    return len(rows)
