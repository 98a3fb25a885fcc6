"""Storage of runs: lifecycle, engine restarts, run log, compact samples and windowed reads,
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import random
import struct
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.db import create_db_engine, upgrade
from aggregator.ingest_session import RecordGap, Store
from aggregator.store import BatchOp, BatchResult, Storage, digests, tables
from protocol import content_digest
from tests.aggregator.helpers import register_frame


class Feeder:
    """Feeds messages to the storage the way the writer does, with one seq counter."""

    def __init__(
        self, storage: Storage, session_id: str = "s1", engine_id: str | None = None
    ) -> None:
        self.storage = storage
        self.engine_id = engine_id or f"pc-{uuid.uuid4().hex[:8]}/Chromatography"
        self.session_id = session_id
        self.seq = storage.register_engine(register_frame(self.engine_id, session_id), "tok")[0]

    def restart(self, session_id: str) -> None:
        self.session_id = session_id
        self.seq = self.storage.register_engine(register_frame(self.engine_id, session_id), "tok")[
            0
        ]

    def send(self, *messages: p.StoredMessage) -> BatchResult:
        ops: list[BatchOp] = []
        for message in messages:
            self.seq += 1
            message = message.model_copy(update={"seq": self.seq})
            ops.append(
                BatchOp(self.engine_id, self.session_id, Store(message, content_digest(message)))
            )
        return self.storage.apply_batch(ops)


def started(run_id: str, t: float = 1000.0, version: int = 1) -> p.RunStarted:
    return p.RunStarted(seq=1, time=t, run_id=run_id, started=t, method_version=version, user="ann")


def stopped(run_id: str, t: float) -> p.RunStopped:
    return p.RunStopped(seq=1, time=t, run_id=run_id, stopped=t, reason="stop", user="ann")


def sample(run_id: str, t: float, **values: object) -> p.TagsUpdated:
    return p.TagsUpdated(
        seq=1,
        time=t,
        run_id=run_id,
        tags=[p.TagValue(name=k, value=v, tick=t) for k, v in values.items()],
    )


def rid() -> str:
    return "run-" + uuid.uuid4().hex[:10]


def tag_id(storage: Storage, run_pk: int, name: str) -> int:
    with storage.engine.connect() as conn:
        return {n: i for i, n, _ in storage.run_tags(conn, run_pk)}[name]


def test_run_lifecycle_with_uod_and_method_versions(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    method = p.Method(
        seq=1, time=999.0, version=3, lines=[p.MethodLine(id="m1", text="Mark: A")], user="ann"
    )
    f.send(method, started(r, version=3))
    f.send(
        *[
            sample(r, 1000.0 + i, FT01=float(i), Inlet="VA01" if i < 5 else "VA02")
            for i in range(10)
        ]
    )
    f.send(
        p.Method(
            seq=1, time=1005.0, version=4, lines=[p.MethodLine(id="m1", text="Mark: B")], user="bob"
        )
    )
    f.send(stopped(r, 1010.0))
    run = storage.run_by_id(r)
    assert run is not None
    assert run.stopped == 1010.0 and run.stop_reason == "stop" and run.started_by == "ann"
    assert json.loads(run.uod_json)["name"] == "Chromatography"
    assert [m.version for m in storage.run_methods(run.pk)] == [3, 4]
    storage.maintain()
    with storage.engine.connect() as conn:
        recent = conn.execute(
            sa.select(sa.func.count())
            .select_from(tables.T_RECENT)
            .where(tables.T_RECENT.c.run_pk == run.pk)
        ).scalar()
    assert recent == 0, "a stopped run is compacted"
    samples, chunks = storage.read_samples(run.pk, tag_id(storage, run.pk, "Inlet"), 0, 2e9)
    assert [v for _, v in samples] == ["VA01"] * 5 + ["VA02"] * 5 and chunks == 1
    samples, _ = storage.read_samples(run.pk, tag_id(storage, run.pk, "FT01"), 1002.0, 1004.0)
    assert samples == [(1002.0, 2.0), (1003.0, 3.0), (1004.0, 4.0)]


def test_values_of_every_type_survive_recent_rows_and_compaction(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    values = [1.5, 7, True, "text", None, 2**60]
    f.send(started(r))
    f.send(*[sample(r, 1000.0 + i, X=v) for i, v in enumerate(values)])
    run = storage.run_by_id(r)
    assert run is not None
    x = tag_id(storage, run.pk, "X")
    before, _ = storage.read_samples(run.pk, x, 0, 2e9)
    f.send(stopped(r, 1100.0))
    storage.maintain()
    after, chunks = storage.read_samples(run.pk, x, 0, 2e9)
    assert [v for _, v in before] == values
    assert after == before and chunks == 1
    assert [type(v) for _, v in after] == [float, int, bool, str, type(None), int]


def test_samples_compact_every_300_per_tag(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    f.send(started(r))
    for block in range(7):
        f.send(
            *[sample(r, 1000.0 + block * 100 + i, FT01=float(block * 100 + i)) for i in range(100)]
        )
        storage.maintain()
    run = storage.run_by_id(r)
    assert run is not None
    with storage.engine.connect() as conn:
        chunks = (
            conn.execute(sa.select(tables.T_CHUNK.c.count).where(tables.T_CHUNK.c.run_pk == run.pk))
            .scalars()
            .all()
        )
        recent = conn.execute(
            sa.select(sa.func.count())
            .select_from(tables.T_RECENT)
            .where(tables.T_RECENT.c.run_pk == run.pk)
        ).scalar()
    assert sorted(chunks) == [300, 300] and recent == 100
    samples, _ = storage.read_samples(run.pk, tag_id(storage, run.pk, "FT01"), 0, 2e9)
    assert [v for _, v in samples] == [float(i) for i in range(700)], (
        "chunks and recent rows read as one"
    )


def test_sample_false_and_samples_outside_runs_are_not_stored(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    f.send(sample(None, 999.0, FT01=1.0))  # type: ignore[arg-type]
    f.send(started(r))
    live_only = sample(r, 1000.5, FT01=5.0).model_copy(update={"sample": False})
    f.send(sample(r, 1000.0, FT01=2.0), live_only)
    run = storage.run_by_id(r)
    assert run is not None
    samples, _ = storage.read_samples(run.pk, tag_id(storage, run.pk, "FT01"), 0, 2e9)
    assert samples == [(1000.0, 2.0)]


def test_run_log_lines_are_upserted_by_id(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    line = p.RunLogLine(
        id="l1", text="Wait: 5 s", start=1001.0, state=p.LineState.RUNNING, progress=0.1
    )
    f.send(started(r), p.RunLog(seq=1, time=1001.0, run_id=r, lines=[line]))
    done = line.model_copy(update={"state": p.LineState.COMPLETED, "progress": 1.0, "end": 1006.0})
    other = p.RunLogLine(id="l2", text="Mark: X", start=1006.0, state=p.LineState.COMPLETED)
    f.send(p.RunLog(seq=1, time=1006.0, run_id=r, lines=[done, other]))
    run = storage.run_by_id(r)
    assert run is not None
    log = storage.run_log(run.pk)
    assert [(x["id"], x["state"], x["progress"]) for x in log] == [
        ("l1", "completed", 1.0),
        ("l2", "completed", None),
    ]


def test_error_log_and_control_state(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    f.send(started(r))
    f.send(
        p.ErrorLog(
            seq=1,
            time=1002.0,
            run_id=r,
            entries=[
                p.ErrorLogEntry(time=1002.0, level="error", message="pump fault", source="hardware")
            ],
        )
    )
    f.send(p.ControlState(seq=1, time=1003.0, run_id=r, state=p.SystemState.PAUSED, block="Load"))
    [entry] = storage.error_log(f.engine_id)
    assert entry.message == "pump fault" and entry.run_pk == storage.run_by_id(r).pk  # type: ignore[union-attr]
    [engine] = [e for e in storage.list_engines() if e.id == f.engine_id]
    assert json.loads(engine.control_json)["state"] == "Paused"


def test_engine_restart_continuing_the_run_keeps_it_open(storage: Storage) -> None:
    f = Feeder(storage, "s1")
    r = rid()
    f.send(started(r), sample(r, 1000.0, FT01=1.0))
    f.restart("s2")
    f.send(sample(r, 1001.0, FT01=2.0))
    run = storage.run_by_id(r)
    assert run is not None and run.stopped is None
    f.send(stopped(r, 1002.0))
    assert storage.run_by_id(r).stop_reason == "stop"  # type: ignore[union-attr]


def test_engine_restart_starting_a_new_run_closes_the_old(storage: Storage) -> None:
    f = Feeder(storage, "s1")
    r1, r2 = rid(), rid()
    f.send(started(r1), sample(r1, 1000.0, FT01=1.0))
    f.restart("s2")
    f.send(started(r2, 2000.0))
    old = storage.run_by_id(r1)
    assert old is not None and old.stopped == 2000.0 and old.stop_reason == "engine restarted"
    assert any("engine restarted" in x["text"] for x in storage.run_log(old.pk))
    assert any("engine restarted" in e.message for e in storage.error_log(f.engine_id))
    assert storage.run_by_id(r2).stopped is None  # type: ignore[union-attr]


def test_late_run_stopped_replaces_the_aggregators_close(storage: Storage) -> None:
    f = Feeder(storage, "s1")
    r1, r2 = rid(), rid()
    f.send(started(r1), started(r2, 2000.0))
    assert storage.run_by_id(r1).stop_reason == f"superseded by run {r2}"  # type: ignore[union-attr]
    f.send(stopped(r1, 1500.0))
    assert storage.run_by_id(r1).stop_reason == "stop"  # type: ignore[union-attr]
    assert storage.run_by_id(r1).stopped == 1500.0  # type: ignore[union-attr]


def test_data_of_a_run_whose_start_was_lost_opens_it(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    f.send(sample(r, 1000.0, FT01=1.0))
    run = storage.run_by_id(r)
    assert run is not None and run.stopped is None
    assert any("never arrived" in e.message for e in storage.error_log(f.engine_id))


def test_gap_goes_into_the_open_runs_log(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    f.send(started(r))
    storage.apply_batch([BatchOp(f.engine_id, "s1", RecordGap(2, 4, "test"))])
    run = storage.run_by_id(r)
    assert run is not None
    assert any("seq 2..4" in x["text"] for x in storage.run_log(run.pk))
    assert storage.last_seq(f.engine_id) == 4


def test_state_survives_a_new_storage_instance(db_url: str) -> None:
    """What a restarted aggregator sees: open runs, stored seq, pending recent samples."""
    engine = create_db_engine(db_url)
    upgrade(engine)
    first = Storage(engine)
    f = Feeder(first)
    r = rid()
    f.send(started(r), *[sample(r, 1000.0 + i, FT01=float(i)) for i in range(5)])
    second = Storage(engine)
    g = Feeder(second, "s2", f.engine_id)
    assert g.seq == 6
    g.send(sample(r, 1005.0, FT01=5.0), stopped(r, 1006.0))
    second.maintain()
    run = second.run_by_id(r)
    assert run is not None and run.stop_reason == "stop"
    samples, _ = second.read_samples(run.pk, tag_id(second, run.pk, "FT01"), 0, 2e9)
    assert [v for _, v in samples] == [float(i) for i in range(6)]
    engine.dispose()


def test_windowed_read_touches_only_overlapping_chunks(storage: Storage) -> None:
    f = Feeder(storage)
    r = rid()
    f.send(started(r, 0.0))
    run = storage.run_by_id(r)
    assert run is not None
    with storage.engine.begin() as conn:
        tid = storage.ingest.registry.tag_id(conn, f.engine_id, "FT01", "L/h")
        storage.write_chunks(conn, run.pk, tid, [(float(t), float(t)) for t in range(30_000)])
    # 100 chunks of 300 s; a 250 s window inside one chunk, and one spanning two
    samples, chunks = storage.read_samples(run.pk, tid, 15_010.0, 15_260.0)
    assert chunks == 1 and samples[0] == (15_010.0, 15_010.0) and len(samples) == 251
    samples, chunks = storage.read_samples(run.pk, tid, 14_950.0, 15_050.0)
    assert chunks == 2 and len(samples) == 101
    samples, chunks = storage.read_samples(run.pk, tid, 29_999.5, 40_000.0)
    assert chunks == 0 and samples == []


def _float32_walk(rng: random.Random, n: int) -> list[float]:
    """Instrument readings: a drifting signal with noise, as a 32-bit float register holds it."""
    value = rng.uniform(0, 100)
    out = []
    for _ in range(n):
        value += rng.gauss(0, 0.05)
        out.append(struct.unpack("f", struct.pack("f", value))[0])
    return out


def _bytes_per_value(tmp_path: Path, hours: float, tags: int) -> float:
    db = tmp_path / "size.sqlite3"
    engine = create_db_engine(f"sqlite:///{db}")
    upgrade(engine)
    storage = Storage(engine)
    f = Feeder(storage)
    r = rid()
    f.send(started(r, 1.7e9))
    run = storage.run_by_id(r)
    assert run is not None
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    empty = db.stat().st_size
    seconds = int(hours * 3600)
    rng = random.Random(7)
    for tag in range(tags):
        values = _float32_walk(rng, seconds)
        with engine.begin() as conn:
            tid = storage.ingest.registry.tag_id(conn, f.engine_id, f"T{tag:03d}", "bar")
            storage.write_chunks(
                conn, run.pk, tid, [(1.7e9 + i + 0.0123, v) for i, v in enumerate(values)]
            )
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size - empty
    engine.dispose()
    return size / (seconds * tags)


def test_compact_storage_bytes_per_value(tmp_path: Path) -> None:
    per_value = _bytes_per_value(tmp_path, hours=1.0, tags=20)
    print(f"bytes per stored value: {per_value:.2f}")
    assert per_value <= 12.0


@pytest.mark.slow
def test_compact_storage_24h_100_tags(tmp_path: Path) -> None:
    per_value = _bytes_per_value(tmp_path, hours=24.0, tags=100)
    total_mb = per_value * 24 * 3600 * 100 / 1e6
    print(f"24 h x 100 tags at 1 s: {per_value:.2f} bytes per value, {total_mb:.1f} MB")
    assert per_value <= 12.0 and total_mb < 100


def test_ingest_path_bytes_per_value(storage: Storage) -> None:
    """Through apply_batch and compaction, as live data arrives: 10 min x 20 tags."""
    f = Feeder(storage)
    r = rid()
    f.send(started(r, 1.7e9))
    rng = random.Random(3)
    series = [_float32_walk(rng, 600) for _ in range(20)]
    for second in range(600):
        t = 1.7e9 + second
        f.send(sample(r, t, **{f"T{k:02d}": series[k][second] for k in range(20)}))
    f.send(stopped(r, 1.7e9 + 600))
    storage.maintain()
    run = storage.run_by_id(r)
    assert run is not None
    with storage.engine.connect() as conn:
        blob_bytes = conn.execute(
            sa.select(sa.func.sum(sa.func.length(tables.T_CHUNK.c.data))).where(
                tables.T_CHUNK.c.run_pk == run.pk
            )
        ).scalar()
    assert blob_bytes is not None
    assert blob_bytes / 12_000 < 8.0
    samples, _ = storage.read_samples(run.pk, tag_id(storage, run.pk, "T07"), 0, 2e10)
    assert [v for _, v in samples] == series[7]
    assert not math.isnan(samples[0][1])  # type: ignore[arg-type]


def test_sub_microsecond_ticks_are_read_back_at_the_window_edges(storage: Storage) -> None:
    """Chunks keep whole microseconds; a tick that rounds down must not fall outside the run's
    own time range (found by the fault tests)."""
    f = Feeder(storage)
    r = rid()
    t0 = 1_700_000_000.0
    while round(t0 * 1e6) / 1e6 >= t0:
        t0 += 1.3e-7
    f.send(started(r, t0), *[sample(r, t0 + n * 0.1, Counter=n) for n in range(1, 4)])
    run = storage.run_by_id(r)
    assert run is not None
    counter = tag_id(storage, run.pk, "Counter")
    rows = [values for _, values in storage.iter_run_rows(run.pk, [counter])]
    assert rows == [[1], [2], [3]]
    f.send(stopped(r, t0 + 1))
    storage.maintain()
    rows = [values for _, values in storage.iter_run_rows(run.pk, [counter])]
    assert rows == [[1], [2], [3]]


def test_method_sent_before_an_aggregator_restart_is_recorded_with_the_run(db_url: str) -> None:
    engine = create_db_engine(db_url)
    upgrade(engine)
    f = Feeder(Storage(engine))
    method = p.Method(seq=1, time=999.0, version=7, lines=[p.MethodLine(id="m1", text="Mark: A")])
    f.send(method)
    g = Feeder(Storage(engine), "s2", f.engine_id)  # the aggregator restarted
    r = rid()
    g.send(started(r, version=7))
    run = g.storage.run_by_id(r)
    assert run is not None
    [recorded] = g.storage.run_methods(run.pk)
    assert recorded.version == 7 and "Mark: A" in recorded.lines_json
    engine.dispose()


def test_old_digests_are_pruned(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digests, "DIGEST_RETENTION", 5)
    f = Feeder(storage)
    r = rid()
    f.send(started(r), *[sample(r, 1000.0 + i, FT01=float(i)) for i in range(150)])
    storage.ingest._last_prune = 0.0
    storage.maintain()
    with storage.engine.connect() as conn:
        seqs = digests.stored_seqs(conn, f.engine_id)
    # whole blocks of 64 seqs are forgotten: those wholly older than the last 5 (146..151)
    assert seqs == list(range(128, 152))


def test_resend_compared_with_a_digest_stored_by_an_older_aggregator(storage: Storage) -> None:
    from aggregator.ingest_session import CompareStored, message_digest

    f = Feeder(storage)  # stores protocol.content_digest, as aggregators before "2:" digests did
    r = rid()
    f.send(started(r), sample(r, 1000.0, FT01=1.5))
    same = sample(r, 1000.0, FT01=1.5).model_copy(update={"seq": f.seq})
    other = sample(r, 1000.0, FT01=2.5).model_copy(update={"seq": f.seq})
    for message in (p.as_historical(same), other):
        storage.apply_batch(
            [BatchOp(f.engine_id, "s2", CompareStored(message, message_digest(message)))]
        )
    integrity = [e for e in storage.error_log(f.engine_id) if "integrity" in e.message]
    assert len(integrity) == 1 and f"seq {f.seq}" in integrity[0].message
