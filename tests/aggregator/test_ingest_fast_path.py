"""A batch is applied without a SAVEPOINT per message; only when a message fails is the whole
attempt rolled back and the batch applied again message by message (store/ingest.py,
apply_batch). Issue 15 item 8: the cheaper path must neither lose nor duplicate anything, and a
bad message must still be quarantined alone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

import protocol as p
from aggregator.ingest_session import Store, message_digest
from aggregator.store import BatchOp, BatchResult, Storage
from aggregator.store.ingest import Ingest
from aggregator.store.tables import T_CHUNK, T_ERRORS, T_RECENT, T_RUN, T_SEQ
from tests.aggregator.helpers import register_frame

BAD = 666.0


class Unit:
    """One registered engine and its seq counter."""

    def __init__(self, storage: Storage) -> None:
        self.engine_id = f"pc-{uuid.uuid4().hex[:8]}/Chromatography"
        self.session_id = uuid.uuid4().hex
        self.seq = storage.register_engine(register_frame(self.engine_id, self.session_id), "t")[0]
        self.run_id = "run-" + uuid.uuid4().hex[:10]

    def op(self, message: BaseModel) -> BatchOp:
        self.seq += 1
        stored = message.model_copy(update={"seq": self.seq})
        return BatchOp(self.engine_id, self.session_id, Store(stored, message_digest(stored)))  # type: ignore[arg-type]

    def start(self, t: float) -> BatchOp:
        return self.op(p.RunStarted(seq=1, time=t, run_id=self.run_id, started=t, method_version=1))

    def sample(self, t: float, value: float) -> BatchOp:
        tag = p.TagValue(name="FT01", value=value, tick=t)
        return self.op(p.TagsUpdated(seq=1, time=t, run_id=self.run_id, tags=[tag]))


@pytest.fixture
def statements(storage: Storage) -> Iterator[list[str]]:
    """Every SQL statement the storage sends, in order."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(storage.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(storage.engine, "before_cursor_execute", record)


@pytest.fixture
def bug(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Applying a TagsUpdated holding the value BAD fails after its rows were written."""
    calls: list[int] = []
    real = Ingest._apply

    def apply(self: Ingest, batch: Any, op: BatchOp, msg: Any) -> None:
        calls.append(msg.seq)
        real(self, batch, op, msg)
        if isinstance(msg, p.TagsUpdated) and any(t.value == BAD for t in msg.tags):
            raise RuntimeError("a bug met by this one message")

    monkeypatch.setattr(Ingest, "_apply", apply)
    return calls


def values(storage: Storage, run_id: str) -> list[float]:
    with storage.engine.connect() as conn:
        pk = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).scalar_one()
        rows = conn.execute(
            sa.select(T_RECENT.c.num).where(T_RECENT.c.run_pk == pk).order_by(T_RECENT.c.t)
        )
        return [float(r.num) for r in rows]


def stored_seq(storage: Storage, engine_id: str) -> int:
    with storage.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == engine_id)
            ).scalar_one()
        )


def errors(storage: Storage, engine_id: str) -> list[str]:
    with storage.engine.connect() as conn:
        rows = conn.execute(sa.select(T_ERRORS.c.message).where(T_ERRORS.c.engine_id == engine_id))
        return [str(r.message) for r in rows]


def savepoints(statements: list[str]) -> int:
    return sum(s.upper().startswith("SAVEPOINT") for s in statements)


def test_a_clean_batch_has_no_savepoint_and_stores_each_message_once(
    storage: Storage, statements: list[str]
) -> None:
    a, b = Unit(storage), Unit(storage)
    statements.clear()
    ops = [a.start(1000.0), b.start(1000.0), a.sample(1001.0, 1.0), b.sample(1001.0, 2.0)]
    result = storage.apply_batch([*ops, a.sample(1002.0, 3.0)])
    assert savepoints(statements) == 0
    assert values(storage, a.run_id) == [1.0, 3.0]
    assert values(storage, b.run_id) == [2.0]
    assert sorted(result.runs_opened) == sorted([(a.engine_id, a.run_id), (b.engine_id, b.run_id)])
    assert (stored_seq(storage, a.engine_id), stored_seq(storage, b.engine_id)) == (3, 2)
    assert not result.quarantined and not result.errors


def test_a_failing_message_is_quarantined_alone_and_nothing_is_stored_twice(
    storage: Storage, statements: list[str], bug: list[int]
) -> None:
    a, b = Unit(storage), Unit(storage)
    statements.clear()
    ops = [a.start(1000.0), b.start(1000.0), a.sample(1001.0, 1.0), b.sample(1001.0, BAD)]
    result = storage.apply_batch([*ops, a.sample(1002.0, 3.0), b.sample(1002.0, 4.0)])
    # the first attempt met the bug at b's seq 2 and was rolled back; the second isolated it
    assert bug == [1, 1, 2, 2, *(1, 1, 2, 2, 3, 3)]
    assert savepoints(statements) == 6
    # what the first attempt wrote before the failure is not there twice, the bad rows never
    assert values(storage, a.run_id) == [1.0, 3.0]
    assert values(storage, b.run_id) == [4.0]
    with storage.engine.connect() as conn:
        runs = conn.execute(
            sa.select(sa.func.count())
            .select_from(T_RUN)
            .where(T_RUN.c.run_id.in_([a.run_id, b.run_id]))
        ).scalar_one()
    assert runs == 2
    assert sorted(result.runs_opened) == sorted([(a.engine_id, a.run_id), (b.engine_id, b.run_id)])
    # every seq counts as stored (the bad one is kept whole in quarantine)
    assert (stored_seq(storage, a.engine_id), stored_seq(storage, b.engine_id)) == (3, 3)
    assert [(e, q) for e, q in result.quarantined if e == a.engine_id] == []
    entries, _, total = storage.quarantine.page(engine_id=b.engine_id)
    assert total == 1 and entries[0].seq == 2
    told = [m for m in errors(storage, b.engine_id) if "could not be applied" in m]
    assert len(told) == 1 and "TagsUpdated seq 2" in told[0]
    assert errors(storage, a.engine_id) == []

    # the caches dropped by the rollback are reloaded: the next clean batch is fast again
    statements.clear()
    storage.apply_batch([a.sample(1003.0, 5.0), b.sample(1003.0, 6.0)])
    assert savepoints(statements) == 0
    assert values(storage, a.run_id) == [1.0, 3.0, 5.0]
    assert values(storage, b.run_id) == [4.0, 6.0]

    # compaction counts each stored sample once
    storage.maintain(force_all=True)
    with storage.engine.connect() as conn:
        for unit, expected in ((a, 3), (b, 2)):
            pk = conn.execute(
                sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == unit.run_id)
            ).scalar_one()
            count = conn.execute(
                sa.select(sa.func.sum(T_CHUNK.c.count)).where(T_CHUNK.c.run_pk == pk)
            ).scalar_one()
            assert count == expected
            left = conn.execute(
                sa.select(sa.func.count()).select_from(T_RECENT).where(T_RECENT.c.run_pk == pk)
            ).scalar_one()
            assert left == 0


def test_a_batch_failing_for_another_reason_is_not_retried(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a message's own failure is retried message by message; a failure of the batch's
    shared statements fails the batch as before (the writer tells the engines to resend)."""
    a = Unit(storage)
    storage.apply_batch([a.start(1000.0)])
    attempts: list[bool] = []
    real = Ingest._apply_batch

    def attempt(self: Ingest, ops: Any, *, isolate: bool) -> BatchResult:
        attempts.append(isolate)
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Ingest, "_apply_batch", attempt)
    with pytest.raises(sa.exc.OperationalError):
        storage.apply_batch([a.sample(1001.0, 1.0)])
    assert attempts == [False]
    monkeypatch.setattr(Ingest, "_apply_batch", real)
    assert stored_seq(storage, a.engine_id) == 1
