"""Reading runs back: run and engine lists, run and error logs, a tag's samples in a window,
the plot of a window (aggregator.store.plot_plan) and the rows of the CSV export.

Read-only and without caches, so any thread may call it (the API runs it on reader threads)."""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.chunks import Sample, decode_chunk
from aggregator.decimate import decimate
from aggregator.store import plot_plan
from aggregator.store.plot_plan import ChunkSummary, Plot
from aggregator.store.rows import EngineRow, ErrorLogRow, RunListing, RunMethodRow, RunRow
from aggregator.store.tables import (
    T_CHUNK,
    T_ENGINE,
    T_ERRORS,
    T_RECENT,
    T_RUN,
    T_RUN_METHOD,
    T_RUNLOG,
    T_SEQ,
    T_TAG,
    row_value,
)
from protocol import ScalarValue

_SUMMARY_COLUMNS = (
    T_CHUNK.c.id,
    T_CHUNK.c.t_first,
    T_CHUNK.c.t_last,
    T_CHUNK.c.count,
    T_CHUNK.c.v_kind,
    T_CHUNK.c.v_min,
    T_CHUNK.c.t_min,
    T_CHUNK.c.v_max,
    T_CHUNK.c.t_max,
    T_CHUNK.c.v_first,
    T_CHUNK.c.v_last,
)


def _window_summaries_statement() -> sa.Select[Any]:
    """The chunks of one tag reaching into [t0, t1] (bound parameters), as summary columns.

    One statement with a subquery standing in for the two seeks of `Queries.window_chunks`
    (the last chunk starting at or before t0, then those starting inside the window): built
    once, because building and compiling SQL per tag cost more than reading its rows."""
    tag = (T_CHUNK.c.run_pk == sa.bindparam("run_pk"), T_CHUNK.c.tag_id == sa.bindparam("tag_id"))
    t0: sa.BindParameter[float] = sa.bindparam("t0", type_=sa.Float)
    t1: sa.BindParameter[float] = sa.bindparam("t1", type_=sa.Float)
    before = (
        sa.select(T_CHUNK.c.t_first)
        .where(*tag, T_CHUNK.c.t_first <= t0)
        .order_by(T_CHUNK.c.t_first.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        sa.select(*_SUMMARY_COLUMNS)
        .where(
            *tag,
            T_CHUNK.c.t_first >= sa.func.coalesce(before, t0),
            T_CHUNK.c.t_first <= t1,
            T_CHUNK.c.t_last >= t0,
        )
        .order_by(T_CHUNK.c.t_first)
    )


_WINDOW_SUMMARIES = _window_summaries_statement()

_RECENT = (
    sa.select(T_RECENT.c.t, T_RECENT.c.num, T_RECENT.c.text, T_RECENT.c.kind)
    .where(
        T_RECENT.c.run_pk == sa.bindparam("run_pk"),
        T_RECENT.c.tag_id == sa.bindparam("tag_id"),
        T_RECENT.c.t >= sa.bindparam("t0"),
        T_RECENT.c.t <= sa.bindparam("t1"),
    )
    .order_by(T_RECENT.c.t, T_RECENT.c.id)
)


class Queries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def last_seq(self, engine_id: str) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == engine_id)
            ).first()
        return 0 if row is None else int(row.last_seq)

    def window_chunks(
        self, conn: Connection, run_pk: int, tag_id: int, t0: float, t1: float, *cols: Any
    ) -> list[sa.Row[Any]]:
        """The chunks of one tag that reach into [t0, t1], in time order.

        Two index seeks: the last chunk starting at or before t0 (it may reach into the window)
        and the chunks starting inside the window; never the rest of the run."""
        where = (T_CHUNK.c.run_pk == run_pk, T_CHUNK.c.tag_id == tag_id)
        chunks: list[sa.Row[Any]] = []
        before = conn.execute(
            sa.select(T_CHUNK.c.t_last, *cols)
            .where(*where, T_CHUNK.c.t_first <= t0)
            .order_by(T_CHUNK.c.t_first.desc())
            .limit(1)
        ).first()
        if before is not None and before.t_last >= t0:
            chunks.append(before)
        chunks.extend(
            conn.execute(
                sa.select(T_CHUNK.c.t_last, *cols)
                .where(*where, T_CHUNK.c.t_first > t0, T_CHUNK.c.t_first <= t1)
                .order_by(T_CHUNK.c.t_first)
            ).all()
        )
        return chunks

    def recent_samples(
        self, conn: Connection, run_pk: int, tag_id: int, t0: float, t1: float
    ) -> list[Sample]:
        """The not yet compacted samples of one tag in [t0, t1], in time (then arrival) order."""
        window = {"run_pk": run_pk, "tag_id": tag_id, "t0": t0, "t1": t1}
        rows = conn.execute(_RECENT, window).all()
        return [(r[0], row_value(r[3], r[1], r[2])) for r in rows]

    def read_samples(
        self, run_pk: int, tag_id: int, t0: float, t1: float, conn: Connection | None = None
    ) -> tuple[list[Sample], int]:
        """Samples of one tag with t0 <= t <= t1, in time order, and how many chunks were read."""
        if conn is None:
            with self.engine.connect() as own:
                return self.read_samples(run_pk, tag_id, t0, t1, own)
        blobs = [c.data for c in self.window_chunks(conn, run_pk, tag_id, t0, t1, T_CHUNK.c.data)]
        samples: list[Sample] = []
        for blob in blobs:
            samples.extend(s for s in decode_chunk(blob) if t0 <= s[0] <= t1)
        samples.extend(self.recent_samples(conn, run_pk, tag_id, t0, t1))
        samples.sort(key=lambda s: s[0])
        return samples, len(blobs)

    def read_decimated(
        self,
        run_pk: int,
        tag_id: int,
        t0: float,
        t1: float,
        points: int,
        conn: Connection | None = None,
    ) -> Plot:
        """The plot series of one tag in [t0, t1], at most `points` values, and how many chunks
        were decoded. Every chunk's minimum and maximum (so the window's too) are kept; most
        chunks are answered from their stored summary (aggregator.store.plot_plan)."""
        if conn is None:
            with self.engine.connect() as own:
                return self.read_decimated(run_pk, tag_id, t0, t1, points, own)
        window = {"run_pk": run_pk, "tag_id": tag_id, "t0": t0, "t1": t1}
        chunks = list(map(ChunkSummary._make, conn.execute(_WINDOW_SUMMARIES, window).all()))
        plot = None
        if chunks:
            recent = self.recent_samples(conn, run_pk, tag_id, t0, t1)
            plot = plot_plan.plan(
                chunks, recent, t0, t1, points, lambda ids: self._decode(conn, ids, t0, t1)
            )
        if plot is None:
            samples, read = self.read_samples(run_pk, tag_id, t0, t1, conn)
            dt, dv = decimate([s[0] for s in samples], [s[1] for s in samples], points)
            return dt, dv, read
        return plot

    @staticmethod
    def _decode(
        conn: Connection, ids: Sequence[int], t0: float, t1: float
    ) -> dict[int, list[Sample]]:
        """The samples in [t0, t1] of the chunks asked for, by chunk id."""
        out: dict[int, list[Sample]] = {}
        for start in range(0, len(ids), 500):
            for row in conn.execute(
                sa.select(T_CHUNK.c.id, T_CHUNK.c.data).where(
                    T_CHUNK.c.id.in_(ids[start : start + 500])
                )
            ):
                out[row.id] = [s for s in decode_chunk(row.data) if t0 <= s[0] <= t1]
        return out

    def run_tags(self, conn: Connection, run_pk: int) -> list[tuple[int, str, str | None]]:
        ids = sa.union(
            sa.select(T_CHUNK.c.tag_id).where(T_CHUNK.c.run_pk == run_pk).distinct(),
            sa.select(T_RECENT.c.tag_id).where(T_RECENT.c.run_pk == run_pk).distinct(),
        ).subquery()
        rows = conn.execute(
            sa.select(T_TAG.c.id, T_TAG.c.name, T_TAG.c.unit)
            .where(T_TAG.c.id.in_(sa.select(ids.c.tag_id)))
            .order_by(T_TAG.c.id)
        ).all()
        return [(int(r.id), str(r.name), r.unit) for r in rows]

    def run_time_range(self, conn: Connection, run_pk: int) -> tuple[float, float] | None:
        a = conn.execute(
            sa.select(sa.func.min(T_CHUNK.c.t_first), sa.func.max(T_CHUNK.c.t_last)).where(
                T_CHUNK.c.run_pk == run_pk
            )
        ).first()
        b = conn.execute(
            sa.select(sa.func.min(T_RECENT.c.t), sa.func.max(T_RECENT.c.t)).where(
                T_RECENT.c.run_pk == run_pk
            )
        ).first()
        lows = [x for x in (a[0] if a else None, b[0] if b else None) if x is not None]
        highs = [x for x in (a[1] if a else None, b[1] if b else None) if x is not None]
        if not lows:
            return None
        return min(lows), max(highs)

    def run_by_id(self, run_id: str) -> RunRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(*RunRow.columns(T_RUN)).where(T_RUN.c.run_id == run_id)
            ).first()
        return None if row is None else RunRow.from_row(row)

    def list_runs(self, unit_id: str | None, before_pk: int | None, limit: int) -> list[RunListing]:
        query = sa.select(*RunListing.columns(T_RUN)).order_by(T_RUN.c.pk.desc()).limit(limit)
        if unit_id is not None:
            query = query.where(T_RUN.c.engine_id == unit_id)
        if before_pk is not None:
            query = query.where(T_RUN.c.pk < before_pk)
        with self.engine.connect() as conn:
            return [RunListing.from_row(r) for r in conn.execute(query)]

    def list_engines(self) -> list[EngineRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T_ENGINE).order_by(T_ENGINE.c.id)).all()
            open_runs = {
                r.engine_id: r.run_id
                for r in conn.execute(
                    sa.select(T_RUN.c.engine_id, T_RUN.c.run_id).where(T_RUN.c.stopped.is_(None))
                )
            }
        return [EngineRow.from_row(r, open_run_id=open_runs.get(r.id)) for r in rows]

    def run_log(self, run_pk: int) -> list[dict[str, Any]]:
        """The run's log lines as the JSON objects they were stored as (protocol RunLogLine, or
        a line the aggregator wrote): callers validate them, an unreadable one is skipped."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_RUNLOG.c.data_json)
                .where(T_RUNLOG.c.run_pk == run_pk)
                .order_by(T_RUNLOG.c.start, T_RUNLOG.c.id)
            ).all()
        return [json.loads(r.data_json) for r in rows]

    def error_log(self, engine_id: str) -> list[ErrorLogRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_ERRORS).where(T_ERRORS.c.engine_id == engine_id).order_by(T_ERRORS.c.id)
            ).all()
        return [ErrorLogRow.from_row(r) for r in rows]

    def run_methods(self, run_pk: int) -> list[RunMethodRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_RUN_METHOD)
                .where(T_RUN_METHOD.c.run_pk == run_pk)
                .order_by(T_RUN_METHOD.c.version)
            ).all()
        return [RunMethodRow.from_row(r) for r in rows]

    def iter_run_rows(
        self, run_pk: int, tag_ids: Sequence[int], window: float = 3600.0
    ) -> Generator[tuple[float, list[ScalarValue]], None, None]:
        """Rows of the CSV export: one per distinct sample time, each tag's last value carried
        forward. Reads the run one window at a time so memory stays bounded for long runs."""
        with self.engine.connect() as conn:
            span = self.run_time_range(conn, run_pk)
            if span is None:
                return
            first, last = span
            current: list[ScalarValue] = [None] * len(tag_ids)
            start = first
            while start <= last:
                end = start + window
                merged: dict[float, dict[int, ScalarValue]] = {}
                for index, tag_id in enumerate(tag_ids):
                    samples, _ = self.read_samples(run_pk, tag_id, start, end, conn)
                    for t, value in samples:
                        if t < end or end > last:
                            merged.setdefault(t, {})[index] = value
                for t in sorted(merged):
                    for index, value in merged[t].items():
                        current[index] = value
                    yield t, list(current)
                start = end
