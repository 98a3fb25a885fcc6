"""Plots from chunk summaries, on SQLite and PostgreSQL: with at least points/8 chunks in the
window the buckets lie on chunk boundaries (one chunk each, or groups of chunks) and keep their
minimum and maximum without decoding the chunks; with fewer, the answer is exactly the plot
decoded from every sample (tests/aggregator/test_plot_plan.py checks the bucket contents against
full decimation). Migration 0003 summarizes the chunks stored before it."""

from __future__ import annotations

import math
import random
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import models as m
from aggregator.chunks import decode_chunk, encode_chunk
from aggregator.db import alembic_config, create_db_engine, upgrade
from aggregator.decimate import decimate, is_numeric
from aggregator.store import Storage
from aggregator.store.tables import sample_row
from protocol import ScalarValue
from tests.aggregator.test_storage import Feeder, rid, started

T_CHUNK: sa.Table = m.SampleChunk.__table__  # type: ignore[attr-defined]


def _new_series(storage: Storage, run_pk: int, engine_id: str) -> int:
    with storage.engine.begin() as conn:
        return storage.ingest.registry.tag_id(conn, engine_id, "T" + uuid.uuid4().hex[:8], "bar")


def _store(
    storage: Storage,
    run_pk: int,
    tag: int,
    chunked: list[tuple[float, ScalarValue]],
    recent: list[tuple[float, ScalarValue]],
) -> None:
    with storage.engine.begin() as conn:
        storage.write_chunks(conn, run_pk, tag, chunked)
        if recent:
            conn.exec_driver_sql(
                storage.ingest.insert_samples, [sample_row(run_pk, tag, t, v) for t, v in recent]
            )


def _plain(
    storage: Storage, run_pk: int, tag: int, t0: float, t1: float, points: int
) -> tuple[list[float], list[ScalarValue]]:
    samples, _ = storage.read_samples(run_pk, tag, t0, t1)
    return decimate([s[0] for s in samples], [s[1] for s in samples], points)


@st.composite
def series(draw: st.DrawFn) -> tuple[list[tuple[float, ScalarValue]], int]:
    n = draw(st.one_of(st.integers(min_value=1, max_value=400), st.integers(600, 2500)))
    kind = draw(st.sampled_from(["float", "int", "gaps", "text", "few"]))
    steps = draw(st.lists(st.sampled_from([0.25, 1.0, 1.0, 1.000001, 7.5]), min_size=1, max_size=5))
    t = 1_700_000_000.123457
    out: list[tuple[float, ScalarValue]] = []
    value = 0
    for i in range(n):
        t += steps[i % len(steps)]
        value += draw(st.integers(min_value=-3, max_value=3)) if i % 97 == 0 else (i % 5) - 2
        v: ScalarValue
        if kind == "int":
            v = value
        elif kind == "few":
            v = float(value % 4)  # many equal extremes: the first occurrence must win
        elif kind == "gaps" and i % 50 < 3:
            v = None
        elif kind == "text" and i % 400 == 7:
            v = "jammed"
        else:
            v = value / 100
        out.append((round(t * 1e6) / 1e6, v))
    recent = draw(st.integers(min_value=0, max_value=min(n, 400)))
    return out, recent


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=series(),
    # few points group chunks into buckets, many give each chunk a bucket or decode a zoom
    points=st.one_of(
        st.integers(min_value=2, max_value=12), st.integers(min_value=2, max_value=300)
    ),
    window=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_summary_plot_equals_the_decoded_plot(
    storage: Storage,
    data: tuple[list[tuple[float, ScalarValue]], int],
    points: int,
    window: tuple[float, float],
) -> None:
    samples, recent = data
    f = Feeder(storage)
    r = rid()
    f.send(started(r, 1_700_000_000.0))
    run = storage.run_by_id(r)
    assert run is not None
    tag = _new_series(storage, run.pk, f.engine_id)
    cut = len(samples) - recent
    _store(storage, run.pk, tag, samples[:cut], samples[cut:])
    first, last = samples[0][0], samples[-1][0]
    a, b = sorted(window)
    for t0, t1 in ((first - 1, last + 1), (first + a * (last - first), first + b * (last - first))):
        expected = _plain(storage, run.pk, tag, t0, t1, points)
        dt, dv, _ = storage.read_decimated(run.pk, tag, t0, t1, points)
        buckets = _chunk_buckets(storage, run.pk, tag, t0, t1, points, expected)
        if buckets is not None:
            _assert_extremes_kept(storage, run.pk, tag, t0, t1, points, dt, dv, each=buckets)
            continue
        assert (dt, dv) == expected
        assert [type(x) for x in dv] == [type(x) for x in expected[1]]


def _chunk_buckets(
    storage: Storage,
    run_pk: int,
    tag: int,
    t0: float,
    t1: float,
    points: int,
    plain: tuple[list[float], list[ScalarValue]],
) -> bool | None:
    """Whether read_decimated puts its buckets on chunk boundaries for this window (docs/api.md):
    None if not, else whether each chunk is a bucket of its own."""
    samples, _ = storage.read_samples(run_pk, tag, t0, t1)
    if len(samples) <= points or not all(is_numeric(v) or v is None for _, v in samples):
        return None
    with storage.engine.connect() as conn:
        chunks = storage.queries.window_chunks(conn, run_pk, tag, t0, t1, T_CHUNK.c.v_kind)
        recent = storage.queries.recent_samples(conn, run_pk, tag, t0, t1)
    if not chunks or not any(c.v_kind for c in chunks):
        return None
    buckets = len(chunks) + (1 if recent else 0)
    if buckets < max(points, 2) // 8 or (recent and max(points, 2) < 4):
        return None
    return buckets <= max(points, 2) // 2


def _assert_extremes_kept(
    storage: Storage,
    run_pk: int,
    tag: int,
    t0: float,
    t1: float,
    points: int,
    dt: list[float],
    dv: list[ScalarValue],
    each: bool = True,
) -> None:
    """At most `points` values in time order, holding the window's minimum and maximum and
    (`each`: one chunk per bucket) those of every chunk (its part inside the window)."""
    assert len(dt) == len(dv) <= max(points, 2)
    assert dt == sorted(dt)
    kept = set(zip(dt, dv, strict=True))
    samples, _ = storage.read_samples(run_pk, tag, t0, t1)
    numbers = [v for _, v in samples if v is not None]
    if numbers:
        assert min(numbers) in dv and max(numbers) in dv
    if not each:
        return
    with storage.engine.connect() as conn:
        chunks = storage.queries.window_chunks(conn, run_pk, tag, t0, t1, T_CHUNK.c.data)
    for chunk in chunks:
        part = [(t, v) for t, v in decode_chunk(chunk.data) if t0 <= t <= t1 and v is not None]
        if not part:
            continue
        low = min(part, key=lambda s: s[1])
        high = max(part, key=lambda s: s[1])
        assert low in kept and high in kept


def test_wide_buckets_group_chunks_from_their_summaries(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    f.send(started(r, 0.0))
    run = storage.run_by_id(r)
    assert run is not None
    tag = _new_series(storage, run.pk, f.engine_id)
    # 100 chunks of 300 s; a spike and a dip inside chunks that are summarized
    values = [round((t % 600) / 60, 2) for t in range(30_000)]
    values[12_345] = 99.5
    values[20_001] = -42.25
    _store(storage, run.pk, tag, [(float(t), v) for t, v in enumerate(values)], [])
    points = 20  # 10 buckets of 10 chunks each: none is decoded
    dt, dv, decoded = storage.read_decimated(run.pk, tag, 0.0, 1e9, points)
    assert decoded == 0
    assert len(dt) <= points
    assert (12_345.0, 99.5) in zip(dt, dv, strict=True)
    assert (20_001.0, -42.25) in zip(dt, dv, strict=True)
    # a zoom over a chunk (12000-12299) and part of the next: only the part is decoded
    dt, dv, decoded = storage.read_decimated(run.pk, tag, 12_000.0, 12_500.0, points)
    assert decoded == 1
    assert (12_345.0, 99.5) in zip(dt, dv, strict=True)
    _assert_extremes_kept(storage, run.pk, tag, 12_000.0, 12_500.0, points, dt, dv)


def test_chunks_are_the_buckets_when_fewer_than_half_the_points(storage: Storage) -> None:
    """The 24 h plot case in small: 288 chunks and 1000 points would cut every chunk with a
    173 s bucket edge; instead each chunk is one bucket and none is decoded but the two the
    window cuts, while every chunk's extremes (random data) are still in the plot."""
    f = Feeder(storage)
    r = rid()
    f.send(started(r, 0.0))
    run = storage.run_by_id(r)
    assert run is not None
    tag = _new_series(storage, run.pk, f.engine_id)
    rng = random.Random(7)
    samples: list[tuple[float, ScalarValue]] = [
        (float(t), round(rng.gauss(0, 10), 3)) for t in range(40 * 300)
    ]
    _store(storage, run.pk, tag, samples[:-100], samples[-100:])  # 39 chunks + recent rows
    pk = run.pk
    dt, dv, decoded = storage.read_decimated(pk, tag, 0.0, 1e9, 100)  # 40 <= 50 buckets
    assert decoded == 0
    _assert_extremes_kept(storage, pk, tag, 0.0, 1e9, 100, dt, dv)
    assert len(dt) > 2 * 39  # every chunk gave its minimum and maximum, the recent rows more
    # a plot without a window reads with open ends (the API does not look up the span first)
    assert storage.read_decimated(pk, tag, -math.inf, math.inf, 100) == (dt, dv, 0)
    everything, _ = storage.read_samples(pk, tag, -math.inf, math.inf)
    assert everything == samples
    dt, dv, decoded = storage.read_decimated(pk, tag, 150.0, 11_000.0, 100)
    assert decoded == 2  # the first and the last chunk are cut by the window
    _assert_extremes_kept(storage, pk, tag, 150.0, 11_000.0, 100, dt, dv)
    # more chunks than buckets: groups of chunks, still nothing decoded
    dt, dv, decoded = storage.read_decimated(pk, tag, 0.0, 1e9, 60)
    assert decoded == 0
    _assert_extremes_kept(storage, pk, tag, 0.0, 1e9, 60, dt, dv, each=False)


def test_migration_0003_summarizes_existing_chunks(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    floats = [(1.0 + i, 5.0 - abs(i - 3)) for i in range(8)]
    texts = [(1.0, "a"), (2.0, "b")]
    with engine.begin() as conn:
        for tag_id, part in ((1, floats), (2, texts)):
            conn.execute(
                sa.text(
                    "INSERT INTO sample_chunk (run_pk, tag_id, t_first, t_last, count, data) "
                    "VALUES (1, :tag, :a, :b, :n, :data)"
                ),
                {
                    "tag": tag_id,
                    "a": part[0][0],
                    "b": part[-1][0],
                    "n": len(part),
                    "data": encode_chunk(part),
                },
            )
    upgrade(engine)
    with engine.connect() as conn:
        rows = {r.tag_id: r for r in conn.execute(sa.select(T_CHUNK))}
    engine.dispose()
    assert (rows[1].v_kind, rows[1].v_min, rows[1].t_min, rows[1].v_max, rows[1].t_max) == (
        "f",
        1.0,
        8.0,
        5.0,
        4.0,
    )
    assert (rows[1].v_first, rows[1].v_last) == (2.0, 1.0)
    assert rows[2].v_kind is None and rows[2].v_min is None
