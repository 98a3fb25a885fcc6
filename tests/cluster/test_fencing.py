"""Ingest fencing (issue 21 item 3, store/fencing.py): two nodes on one PostgreSQL database can
never both commit frames of one engine. A split brain is forced: two nodes each hold a link of
the same engine id (no NATS between them, so neither learns of the other); the older node's
commit is refused, its link ends, nothing is stored twice and nothing is lost (the engine
resends what was not acknowledged to the node that holds it)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.app import create_app
from aggregator.context import Settings
from aggregator.db import create_db_engine
from aggregator.ingest_session import Store, message_digest
from aggregator.store import BatchOp, Storage, digests
from aggregator.store.fencing import T_LEASE, Fenced
from aggregator.store.tables import T_CHUNK, T_RECENT, T_RUN, T_SEQ
from aggregator.writer import Writer
from tests.aggregator.conftest import pg_database  # noqa: F401  (fixture)
from tests.aggregator.helpers import Aggregator, RawEngine, register_frame, tags, until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def engine_id() -> str:
    return f"fence-{uuid.uuid4().hex[:8]}/Chromatography"


def store(engine: str, message: p.StoredMessage) -> BatchOp:
    return BatchOp(engine, "s", Store(message, message_digest(message)))


def started(seq: int, run_id: str) -> p.RunStarted:
    now = time.time()
    return p.RunStarted(seq=seq, time=now, run_id=run_id, started=now, method_version=1)


@pytest.fixture
def two_storages(pg_database: str) -> Iterator[tuple[Storage, Storage]]:  # noqa: F811
    a, b = Storage(create_db_engine(pg_database)), Storage(create_db_engine(pg_database))
    try:
        yield a, b
    finally:
        a.engine.dispose()
        b.engine.dispose()


def stored(storage: Storage, engine: str) -> tuple[list[int], int, int]:
    """(received seqs in order, last_seq, recent sample rows of the engine's runs)."""
    with storage.engine.connect() as conn:
        seqs = digests.stored_seqs(conn, engine)
        last = conn.execute(sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == engine))
        runs = sa.select(T_RUN.c.pk).where(T_RUN.c.engine_id == engine)
        samples = conn.execute(
            sa.select(sa.func.count()).select_from(T_RECENT).where(T_RECENT.c.run_pk.in_(runs))
        )
        return seqs, int(last.scalar_one()), int(samples.scalar_one())


def test_the_old_holders_batch_is_refused_whole(two_storages: tuple[Storage, Storage]) -> None:
    a, b = two_storages
    engine, run = engine_id(), uuid.uuid4().hex
    reg = register_frame(engine)
    assert a.register_engine(reg, "t") == (0, None)
    a.apply_batch(
        [store(engine, started(1, run))] + [store(engine, tags(s, 1.0 * s, run)) for s in (2, 3)]
    )
    assert b.register_engine(reg, "t")[0] == 3  # the engine moved to node B

    with pytest.raises(Fenced) as refused:
        a.apply_batch([store(engine, tags(s, 1.0 * s, run)) for s in (4, 5)])
    assert refused.value.engine_ids == {engine}
    assert stored(a, engine) == ([1, 2, 3], 3, 2)  # nothing of the refused batch

    b.apply_batch([store(engine, tags(s, 1.0 * s, run)) for s in (4, 5, 6)])  # the resend
    assert stored(b, engine) == ([1, 2, 3, 4, 5, 6], 6, 5)
    with b.engine.connect() as conn:
        epoch = conn.execute(sa.select(T_LEASE.c.epoch).where(T_LEASE.c.engine_id == engine))
        assert epoch.scalar_one() == 2

    # and back to node A: B is fenced now, A stores again (its caches refreshed: the open run)
    assert a.register_engine(reg, "t") == (6, run)
    with pytest.raises(Fenced):
        b.apply_batch([store(engine, tags(7, 7.0, run))])
    a.apply_batch([store(engine, tags(7, 7.0, run))])
    assert stored(a, engine) == ([1, 2, 3, 4, 5, 6, 7], 7, 6)


def test_a_takeover_waits_for_the_old_holders_commit_in_flight(
    two_storages: tuple[Storage, Storage],
) -> None:
    """The new node's registration reads last_seq only after the old node's batch, already in
    its transaction, has committed: the engine is told to resend from the right seq."""
    a, b = two_storages
    engine, run = engine_id(), uuid.uuid4().hex
    reg = register_frame(engine)
    a.register_engine(reg, "t")
    a.apply_batch([store(engine, started(1, run))])
    in_transaction, release = threading.Event(), threading.Event()
    original = a.ingest._load

    def slow_load(conn: sa.Connection) -> None:  # called right after the fence check
        original(conn)
        in_transaction.set()
        assert release.wait(20.0)

    a.ingest._load = slow_load  # type: ignore[method-assign]
    batch = threading.Thread(
        target=a.apply_batch, args=([store(engine, tags(s, 1.0 * s, run)) for s in (2, 3)],)
    )
    batch.start()
    assert in_transaction.wait(20.0)
    result: list[tuple[int, str | None]] = []
    takeover = threading.Thread(target=lambda: result.append(b.register_engine(reg, "t")))
    takeover.start()
    takeover.join(0.5)
    assert takeover.is_alive(), "the takeover did not wait for the batch in flight"
    release.set()
    batch.join(20.0)
    takeover.join(20.0)
    assert result == [(3, run)]
    assert stored(b, engine) == ([1, 2, 3], 3, 2)


async def test_the_writer_fails_only_the_fenced_link(
    two_storages: tuple[Storage, Storage],
) -> None:
    """A batch mixing a lost engine's frames with another engine's: the other engine's frames
    are stored and acknowledged, only the lost engine's link is failed."""
    a, b = two_storages
    lost, kept, run_lost, run_kept = engine_id(), engine_id(), uuid.uuid4().hex, uuid.uuid4().hex
    for engine in (lost, kept):
        a.register_engine(register_frame(engine), "t")
    b.register_engine(register_frame(lost), "t")
    outcome: dict[str, str] = {}

    class Client:
        def __init__(self, name: str) -> None:
            self.name = name

        def on_committed(self, seq: int, items: int) -> None:
            outcome[self.name] = f"acked {seq}"

        def on_store_failed(self, error: BaseException, items: int) -> None:
            outcome[self.name] = type(error).__name__

    writer = Writer(a, window=0.05)
    writer.start()
    try:
        writer.submit(Client("lost"), [store(lost, started(1, run_lost))], 1)
        writer.submit(Client("kept"), [store(kept, started(1, run_kept))], 1)
        await until(lambda: len(outcome) == 2, 20, "both links told")
    finally:
        await writer.stop()
    assert outcome == {"lost": "Fenced", "kept": "acked 1"}
    assert stored(a, kept)[:2] == ([1], 1)
    assert stored(a, lost)[:2] == ([], 0)


@pytest.fixture
async def two_plain_nodes(pg_database: str) -> AsyncIterator[tuple[Aggregator, Aggregator]]:  # noqa: F811
    """Two aggregators on one database and no NATS: neither hears of the other's links."""
    settings = Settings(batch_window=0.005, static_dir="/nonexistent")
    a = Aggregator(create_app(pg_database, settings))
    b = Aggregator(create_app(pg_database, settings))
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await b.stop()
        await a.stop()


async def test_split_brain_over_sockets(two_plain_nodes: tuple[Aggregator, Aggregator]) -> None:
    a, b = two_plain_nodes
    engine, run = engine_id(), uuid.uuid4().hex
    old = RawEngine(a, engine)
    token = a.engine_token(engine)
    other = RawEngine(a)  # a healthy engine on the old node, which must not suffer
    session = uuid.uuid4().hex
    try:
        await old.register(session)
        await other.register()
        await old.send(started(1, run))
        for seq in (2, 3):
            await old.send(tags(seq, time.time(), run))
        await old.wait_ack(3)

        new = RawEngine(b, engine)  # the same engine, now also linked to node B
        await new.connect(token)
        await new.send(register_frame(engine, session))
        registered = await new.wait_for(p.Registered)
        assert registered.last_seq == 3

        # node A, unaware, gets frames on its stale link: its commit is refused, its link ends
        for seq in (4, 5):
            await old.send(tags(seq, time.time(), run))
        await other.send(started(1, uuid.uuid4().hex))
        await until(old.closed.is_set, 20, "node A to end its fenced link")
        assert old.acked() == 3
        await other.wait_ack(1)
        assert not other.closed.is_set()

        # the engine resends what was not acknowledged, to the node that holds it
        for seq in (4, 5, 6):
            await new.send(tags(seq, time.time(), run))
        await new.wait_ack(6)
        assert stored(a.ctx.storage, engine) == ([1, 2, 3, 4, 5, 6], 6, 5)
        await new.aclose()
    finally:
        await old.aclose()
        await other.aclose()
        await asyncio.sleep(0)


def test_two_nodes_compacting_one_series_chunk_each_sample_once(
    two_storages: tuple[Storage, Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an engine moved, the old node's compactor may still count the series it wrote:
    both nodes compacting it at once must not chunk its samples twice."""
    from aggregator.store import compaction

    a, b = two_storages
    engine, run = engine_id(), uuid.uuid4().hex
    b.register_engine(register_frame(engine), "t")
    b.apply_batch([store(engine, started(1, run))])
    b.apply_batch([store(engine, tags(s, 1000.0 + s, run)) for s in range(2, 12)])
    inside, release = threading.Event(), threading.Event()
    original = compaction.write_chunks

    def slow_write(conn: sa.Connection, run_pk: int, tag_id: int, samples: list) -> int:  # type: ignore[type-arg]
        if threading.current_thread().name == "node-a":
            inside.set()
            assert release.wait(20.0)
        return original(conn, run_pk, tag_id, samples)

    monkeypatch.setattr(compaction, "write_chunks", slow_write)
    first = threading.Thread(target=lambda: a.maintain(force_all=True), name="node-a")
    first.start()
    assert inside.wait(20.0)
    second = threading.Thread(target=lambda: b.maintain(force_all=True), name="node-b")
    second.start()
    second.join(0.5)
    release.set()
    first.join(20.0)
    second.join(20.0)
    with a.engine.connect() as conn:
        runs = sa.select(T_RUN.c.pk).where(T_RUN.c.engine_id == engine)
        counted = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(T_CHUNK.c.count), 0)).where(
                T_CHUNK.c.run_pk.in_(runs)
            )
        ).scalar_one()
    assert counted == 10  # FT01 of seqs 2..11, each once


def test_a_node_taking_an_engine_back_sees_the_runs_another_node_stored(
    two_storages: tuple[Storage, Storage],
) -> None:
    """Cross-node cache refresh: node A's writer cached run 1 as open; node B closed it and
    opened run 2 meanwhile. Back on A, the engine's open run is run 2, and its samples go there."""
    a, b = two_storages
    engine, first, second = engine_id(), uuid.uuid4().hex, uuid.uuid4().hex
    reg = register_frame(engine)
    a.register_engine(reg, "t")
    a.apply_batch([store(engine, started(1, first)), store(engine, tags(2, 2.0, first))])
    assert b.register_engine(reg, "t") == (2, first)
    now = time.time()
    stopped = p.RunStopped(seq=3, time=now, run_id=first, stopped=now, reason="stop")
    b.apply_batch([store(engine, stopped), store(engine, started(4, second))])
    assert a.register_engine(reg, "t") == (4, second)
    a.apply_batch([store(engine, tags(5, 5.0, second))])
    with a.engine.connect() as conn:
        rows = conn.execute(
            sa.select(T_RUN.c.run_id, T_RUN.c.stopped.is_(None)).where(T_RUN.c.engine_id == engine)
        ).all()
    assert sorted((r[0], bool(r[1])) for r in rows) == sorted([(first, False), (second, True)])


def test_a_stalled_old_holder_does_not_hold_the_engine_for_ever(
    two_storages: tuple[Storage, Storage],
) -> None:
    """Node A stalls inside a batch's transaction (a stopped process): node B's registration
    waits only its lock timeout (its writer thread serves every engine), and once the server
    has ended A's silent transaction B takes the engine; A's batch then fails, storing nothing."""
    a, b = two_storages
    a.ingest.leases.idle_timeout = 1.0
    b.ingest.leases.lock_timeout = 0.3
    engine, run = engine_id(), uuid.uuid4().hex
    reg = register_frame(engine)
    a.register_engine(reg, "t")
    a.apply_batch([store(engine, started(1, run))])
    in_transaction, release = threading.Event(), threading.Event()
    original = a.ingest._load

    def stalled_load(conn: sa.Connection) -> None:
        original(conn)
        in_transaction.set()
        release.wait(30.0)

    a.ingest._load = stalled_load  # type: ignore[method-assign]
    failures: list[BaseException] = []

    def batch() -> None:
        try:
            a.apply_batch([store(engine, tags(2, 2.0, run))])
        except Exception as exc:
            failures.append(exc)

    stalled = threading.Thread(target=batch)
    stalled.start()
    try:
        assert in_transaction.wait(20.0)
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            b.register_engine(reg, "t")
        deadline = time.monotonic() + 20.0
        while True:
            try:
                assert b.register_engine(reg, "t") == (1, run)
                break
            except sa.exc.OperationalError:
                assert time.monotonic() < deadline, "node B never got the engine"
                time.sleep(0.2)
    finally:
        release.set()
        stalled.join(20.0)
    assert failures, "the stalled batch committed after its transaction was ended"
    assert stored(b, engine) == ([1], 1, 0)


class Statements:
    """Counts the SQL statements a Storage sends (sqlalchemy's cursor event)."""

    def __init__(self, storage: Storage) -> None:
        self.texts: list[str] = []
        sa.event.listen(storage.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, *rest: object) -> None:
        self.texts.append(statement)

    def on(self, table: str) -> list[str]:
        return [t for t in self.texts if re.search(rf"\b{table}\b", t)]


def test_an_engine_moving_back_refreshes_only_its_own_caches(
    two_storages: tuple[Storage, Storage],
) -> None:
    """After a fail-over every engine registers again, one after another on the writer thread:
    a registration that forgot every engine's cached tag ids made each following batch read
    them all again (100 engines x 100 tags per registration at a site). Only the engine that
    moved is read again; the others' next batch reads no tag row."""
    a, b = two_storages
    moved, stayed, run_m, run_s = engine_id(), engine_id(), uuid.uuid4().hex, uuid.uuid4().hex
    for engine, run in ((moved, run_m), (stayed, run_s)):
        a.register_engine(register_frame(engine), "t")
        a.apply_batch([store(engine, started(1, run)), store(engine, tags(2, 2.0, run))])
    assert b.register_engine(register_frame(moved), "t") == (2, run_m)
    b.apply_batch([store(moved, tags(3, 3.0, run_m))])
    assert a.register_engine(register_frame(moved), "t") == (3, run_m)
    seen = Statements(a)
    a.apply_batch([store(stayed, tags(3, 3.0, run_s)), store(moved, tags(4, 4.0, run_m))])
    assert [t for t in seen.on("tag") if t.lstrip().upper().startswith("SELECT")] == []
    assert stored(a, stayed)[0] == [1, 2, 3] and stored(a, moved)[0] == [1, 2, 3, 4]


def test_registration_reads_and_writes_tags_in_a_few_statements(
    two_storages: tuple[Storage, Storage],
) -> None:
    """A 100-tag UOD registers in a bounded number of statements, first time and again; a tag
    added to the UOD and a changed unit are recorded."""
    a, _ = two_storages
    engine = engine_id()
    uod = p.UodDescription(
        name="Bench",
        tags=[p.TagDescription(name=f"T{i:03d}", unit="bar", kind="reading") for i in range(100)],
    )
    seen = Statements(a)
    a.register_engine(register_frame(engine).model_copy(update={"uod": uod}), "t")
    assert len(seen.on("tag")) <= 3
    changed = uod.model_copy(
        update={
            "tags": [
                *uod.tags[:99],
                p.TagDescription(name="T099", unit="mbar", kind="reading"),
                p.TagDescription(name="T100", unit="L", kind="reading"),
            ]
        }
    )
    seen.texts.clear()
    a.register_engine(register_frame(engine).model_copy(update={"uod": changed}), "t")
    assert len(seen.on("tag")) <= 4
    with a.engine.connect() as conn:
        units: dict[str, str | None] = dict(
            conn.execute(
                sa.text("SELECT name, unit FROM tag WHERE engine_id = :e"), {"e": engine}
            ).all()
        )
    assert len(units) == 101 and units["T099"] == "mbar" and units["T100"] == "L"
