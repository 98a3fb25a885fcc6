"""The ingest path: engine registration and batches of engine messages, stored on the one
writer thread (aggregator.writer), followed by compaction.

With a single writer the caches (tag ids and UODs in Registry, open runs in Runs, the recent
sample index in Compactor) can never disagree with the database, except after a failed
transaction, when they are simply dropped and reloaded (`reset`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator.ingest_session import CompareStored, IntegrityError, RecordGap, Store
from aggregator.store import alarms, digests, quarantine
from aggregator.store.batch import BatchOp, BatchResult, StoredError
from aggregator.store.compaction import Compactor
from aggregator.store.fencing import Leases
from aggregator.store.registration import Registry
from aggregator.store.runs import OpenRun, Runs, aggregator_line, record_error, upsert_runlog
from aggregator.store.tables import T_ENGINE, T_RUN, T_SEQ, SampleRow, sample_row
from protocol import (
    STORED_MESSAGE_TYPES,
    AlarmsUpdated,
    ControlState,
    ErrorLog,
    Method,
    MethodState,
    RegisterEngine,
    RunLog,
    RunStarted,
    RunStopped,
    StoredMessage,
    SystemState,
    TagsUpdated,
    decode,
)

log = logging.getLogger(__name__)

DIGEST_PRUNE_SECONDS = 10.0
"""How often old digests are deleted (store/digests.py: what is kept, and why no more)."""

# Built once: constructing a statement costs more than executing it.
_SEQ_UPDATE = (
    T_SEQ.update()
    .where(T_SEQ.c.engine_id == sa.bindparam("e"), T_SEQ.c.last_seq < sa.bindparam("s"))
    .values(last_seq=sa.bindparam("s"), updated=sa.bindparam("now"))
)


class _MessageFailed(Exception):
    """A message failed to apply in a batch applied without SAVEPOINTs (see apply_batch)."""

    def __init__(self, engine_id: str, kind: str, seq: int) -> None:
        super().__init__(f"{kind} seq {seq} of {engine_id}")
        self.engine_id = engine_id
        self.kind = kind
        self.seq = seq


@dataclass
class _Batch:
    """A batch being applied: its transaction, what it changed, the sample rows to insert."""

    conn: Connection
    result: BatchResult
    samples: list[SampleRow]
    now: float

    def link_error(self, op: BatchOp, pk: int | None, text: str, seq: int | None) -> None:
        error = StoredError(op.engine_id, pk, self.now, "error", "link", text, seq)
        record_error(self.conn, self.result, error)


class Ingest:
    def __init__(
        self, engine: Engine, clock: Callable[[], float], registry: Registry, compactor: Compactor
    ) -> None:
        self.engine = engine
        self._clock = clock
        self.is_sqlite = engine.dialect.name == "sqlite"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self.insert_samples = (
            "INSERT INTO sample_recent (run_pk, tag_id, t, num, text, kind) "
            f"VALUES ({', '.join([mark] * 6)})"
        )
        """The statement inserting SampleRow tuples (exec_driver_sql)."""
        self.registry = registry
        self.compactor = compactor
        self.runs = Runs(registry, compactor)
        self.leases = Leases(enabled=not self.is_sqlite)
        """Ingest fencing across nodes (store/fencing.py)."""
        self.digests = digests.Digests(engine.dialect.paramstyle)
        self._last_prune = 0.0

    def reset(self) -> None:
        """Drop every writer cache (after a failed transaction)."""
        self.registry.reset()
        self.runs.reset()
        self.compactor.reset()
        self.digests.reset()

    def _load(self, conn: Connection) -> None:
        self.runs.load(conn)
        self.compactor.load(conn)

    def register_engine(self, reg: RegisterEngine, token_name: str) -> tuple[int, str | None]:
        """Record the engine and its UOD; return (last stored seq, open run id)."""
        self.digests.forget(reg.engine_id)
        try:
            with self.engine.begin() as conn:
                moved = self.leases.take(conn, reg.engine_id, self._clock())
                self._load(conn)
                if moved:  # another node stored this engine's frames since we last did
                    self.registry.forget(reg.engine_id)
                    self.runs.refresh(conn, reg.engine_id)
                last_seq = self.registry.register(conn, reg, token_name, self._clock())
        except Exception:
            self.reset()
            raise
        open_run = self.runs.open_run(reg.engine_id)
        return last_seq, None if open_run is None else open_run.run_id

    def apply_and_maintain(self, ops: Sequence[BatchOp]) -> BatchResult:
        """One trip to the writer thread per batch: store it, then compact what is due. A
        compaction failure does not fail the batch (it is committed); it is retried later."""
        result = self.apply_batch(ops)
        try:
            self.maintain()
        except Exception:
            log.exception("sample compaction failed; it will be retried")
        return result

    def maintain(self, *, force_all: bool = False) -> int:
        """Compact recent samples into chunks where due (all with force_all), and now and then
        forget old message digests. Returns the number of chunks written."""
        now = self._clock()
        written = self.compactor.compact(now, force_all=force_all)
        if now - self._last_prune >= DIGEST_PRUNE_SECONDS:
            self._last_prune = now
            self._prune_digests()
        return written

    def maintenance_due(self) -> bool:
        """Whether `maintain` may have anything to do now (Compactor.work_due, or the digests'
        prune): asked by the idle writer before it hops to its thread for it."""
        now = self._clock()
        return self.compactor.work_due(now) or now - self._last_prune >= DIGEST_PRUNE_SECONDS

    def _prune_digests(self) -> None:
        with self.engine.begin() as conn:
            self.digests.prune(conn, digests.DIGEST_RETENTION)

    def apply_batch(self, ops: Sequence[BatchOp]) -> BatchResult:
        """Store a batch in one transaction. Raises on failure, having rolled back everything.

        A message that fails unexpectedly (a bug, a constraint we did not foresee) is rolled
        back alone and kept whole in quarantine, in the batch's transaction, with a line in its
        engine's error log (store/quarantine.py says why its seq still counts as stored). The
        other engines' frames of the batch commit and every stream goes on instead of all of
        them being disconnected to resend the same failure, and nothing is acknowledged that
        is not durably kept.

        That isolation needs a SAVEPOINT per message, which cost more than the message itself
        (two statements each, the largest per-frame item of a batch): so a batch is first
        applied without them, and only when a message fails is that whole attempt rolled back
        (nothing of it stays, the caches are dropped) and the batch applied again with one
        SAVEPOINT per message. A failure costs one more attempt; a clean batch, none."""
        try:
            return self._apply_batch(ops, isolate=False)
        except _MessageFailed as failed:
            log.warning(
                "engine %s: %s seq %d failed to apply; applying its batch again one by one",
                failed.engine_id,
                failed.kind,
                failed.seq,
            )
        return self._apply_batch(ops, isolate=True)

    def _apply_batch(self, ops: Sequence[BatchOp], *, isolate: bool) -> BatchResult:
        """One attempt of apply_batch; `isolate`: each message in its own SAVEPOINT."""
        high: dict[str, int] = {}
        failed = False
        try:
            with self.engine.begin() as conn:
                if self.is_sqlite:
                    # pysqlite begins a transaction only before the first INSERT/UPDATE/DELETE:
                    # a SAVEPOINT before that would open it, and its RELEASE commit it, piece by
                    # piece. Begin it here (IMMEDIATE: this thread is the only writer anyway).
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                self.leases.check(conn, {op.engine_id for op in ops})
                self._load(conn)
                batch = _Batch(conn, BatchResult(), [], self._clock())
                received: list[digests.Received] = []
                for op in ops:
                    action = op.action
                    if isinstance(action, Store):
                        msg = action.message
                        received.append((op.engine_id, msg.seq, msg.type, action.digest))
                        high[op.engine_id] = max(high.get(op.engine_id, 0), msg.seq)
                        failed |= not self._apply_one(batch, op, msg, isolate)
                    elif isinstance(action, CompareStored):
                        self._compare(batch, op, action)
                    elif isinstance(action, IntegrityError):
                        log.error("engine %s: integrity error: %s", op.engine_id, action.text)
                        pk = self.runs.current_pk(op.engine_id)
                        batch.link_error(op, pk, f"integrity error: {action.text}", action.seq)
                    else:
                        self._gap(batch, op, action)
                        high[op.engine_id] = max(high.get(op.engine_id, 0), action.last)
                if received:
                    self.digests.record(conn, received)
                if batch.samples:
                    conn.exec_driver_sql(self.insert_samples, batch.samples)
                if high:
                    conn.execute(
                        _SEQ_UPDATE,
                        [{"e": e, "s": seq, "now": batch.now} for e, seq in high.items()],
                    )
        except Exception:
            self.reset()
            raise
        if failed:
            self.reset()  # reload with this batch's samples counted (compaction)
        return batch.result

    def _apply_one(self, batch: _Batch, op: BatchOp, msg: StoredMessage, isolate: bool) -> bool:
        """Apply one message, in a SAVEPOINT when `isolate` (see apply_batch); False when it
        failed and was quarantined. Without `isolate` a failure ends the attempt."""
        if not isolate:
            try:
                self._apply(batch, op, msg)
            except Exception as exc:
                raise _MessageFailed(op.engine_id, msg.type, msg.seq) from exc
            return True
        result = batch.result
        marks = (
            len(batch.samples),
            len(result.errors),
            len(result.runs_opened),
            len(result.runs_closed),
            len(result.alarms),
        )
        try:
            with batch.conn.begin_nested():
                self._apply(batch, op, msg)
            return True
        except Exception as exc:
            log.exception(
                "engine %s: applying %s seq %d failed; quarantined", op.engine_id, msg.type, msg.seq
            )
            del batch.samples[marks[0] :]
            del result.errors[marks[1] :]
            del result.runs_opened[marks[2] :]
            del result.runs_closed[marks[3] :]
            del result.alarms[marks[4] :]
            # the caches may name rows the savepoint rolled back: reload them from here
            self.reset()
            self._load(batch.conn)
            reason = quarantine.failure_text(exc)
            qid = quarantine.keep(batch.conn, op, msg, reason, batch.now)
            result.quarantined.append((op.engine_id, qid))
            text = (
                f"{msg.type} seq {msg.seq} could not be applied ({reason[:200]}); it is kept "
                f"whole in quarantine #{qid}, nothing is lost: an admin can replay it after a fix"
            )
            record_error(
                batch.conn,
                result,
                StoredError(
                    op.engine_id,
                    self.runs.current_pk(op.engine_id),
                    batch.now,
                    "error",
                    "aggregator",
                    text,
                    msg.seq,
                ),
            )
            return False

    def replay(self, qid: int, by: str) -> quarantine.Replayed | None:
        """Apply a quarantined message through the ingest path (the same handlers, in a
        SAVEPOINT); it leaves quarantine when applied, or without being applied when a newer
        message of the same snapshot kind was stored since. None: no such entry."""
        failed = False
        try:
            with self.engine.begin() as conn:
                if self.is_sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")  # see apply_batch
                self._load(conn)
                found = quarantine.load(conn, qid)
                if found is None:
                    return None
                entry, session_id, text = found
                batch = _Batch(conn, BatchResult(), [], self._clock())
                if quarantine.superseded(conn, entry):
                    quarantine.remove(conn, qid)
                    self._replayed(batch, entry, "removed unapplied: a newer one was stored", by)
                    return quarantine.Replayed(entry, "superseded", None, batch.result)
                msg = _stored_message(text)
                op = BatchOp(entry.engine_id, session_id, Store(msg, ""))
                try:
                    with conn.begin_nested():
                        self._apply(batch, op, msg)
                        if batch.samples:
                            conn.exec_driver_sql(self.insert_samples, batch.samples)
                except Exception as exc:
                    log.exception("replaying quarantined message #%d failed", qid)
                    failed = True
                    error = quarantine.failure_text(exc)
                    quarantine.failed_again(conn, qid, error)
                    return quarantine.Replayed(entry, "failed", error, BatchResult())
                quarantine.remove(conn, qid)
                self._replayed(batch, entry, "applied", by)
                return quarantine.Replayed(entry, "applied", None, batch.result)
        except Exception:
            self.reset()
            raise
        finally:
            if failed:
                self.reset()

    def note_error(self, engine_id: str, level: str, text: str) -> StoredError:
        """An aggregator's line in an engine's error log (against its open run, if any)."""
        with self.engine.begin() as conn:
            self._load(conn)
            now = self._clock()
            error = StoredError(
                engine_id, self.runs.current_pk(engine_id), now, level, "aggregator", text, None
            )
            record_error(conn, BatchResult(), error)
        return error

    def _replayed(self, batch: _Batch, entry: quarantine.Quarantined, what: str, by: str) -> None:
        text = f"{entry.kind} seq {entry.seq} from quarantine #{entry.id} replayed by {by}: {what}"
        error = StoredError(
            entry.engine_id,
            self.runs.current_pk(entry.engine_id),
            batch.now,
            "info",
            "aggregator",
            text,
            entry.seq,
        )
        record_error(batch.conn, batch.result, error)

    def _apply(self, batch: _Batch, op: BatchOp, msg: StoredMessage) -> None:
        if isinstance(msg, TagsUpdated):
            self._tags(batch, op, msg)
        elif isinstance(msg, RunStarted):
            if not self.runs.exists(batch.conn, msg.run_id):
                self.runs.start(
                    batch.conn,
                    op,
                    batch.result,
                    msg.run_id,
                    msg.started,
                    method_version=msg.method_version,
                    user=msg.user,
                    run_counter=msg.run_counter,
                )
        elif isinstance(msg, RunStopped):
            self._run_stopped(batch, op, msg)
        elif isinstance(msg, RunLog):
            pk = self._pk(batch, op, msg.run_id, msg.time)
            if pk is not None:
                for line in msg.lines:
                    upsert_runlog(batch.conn, pk, line.id, line.start, line.model_dump(mode="json"))
        elif isinstance(msg, Method):
            self.runs.set_method(batch.conn, op.engine_id, msg)
        elif isinstance(msg, MethodState):
            pk = self._pk(batch, op, msg.run_id, msg.time)
            if pk is not None:
                batch.conn.execute(
                    T_RUN.update()
                    .where(T_RUN.c.pk == pk)
                    .values(method_state_json=msg.model_dump_json())
                )
        elif isinstance(msg, ControlState):
            self._control_state(batch, op, msg)
        elif isinstance(msg, ErrorLog):
            pk = self._pk(batch, op, msg.run_id, msg.time)
            for entry in msg.entries:
                error = StoredError(
                    op.engine_id, pk, entry.time, entry.level, entry.source, entry.message, msg.seq
                )
                record_error(batch.conn, batch.result, error)
        elif isinstance(msg, AlarmsUpdated):
            pk = self.runs.run_pk(batch.conn, op, msg.run_id, msg.time, batch.result)
            batch.result.alarms.append(alarms.apply(batch.conn, op.engine_id, pk, msg))

    def _pk(self, batch: _Batch, op: BatchOp, run_id: str | None, t: float) -> int | None:
        """The run a message names, else the engine's open run."""
        pk = self.runs.run_pk(batch.conn, op, run_id, t, batch.result)
        return pk or self.runs.current_pk(op.engine_id)

    def _tags(self, batch: _Batch, op: BatchOp, msg: TagsUpdated) -> None:
        if not msg.sample:
            return
        run_pk = self.runs.run_pk(batch.conn, op, msg.run_id, msg.time, batch.result)
        if run_pk is None:
            return
        for tag in msg.tags:
            tag_id = self.registry.tag_id(batch.conn, op.engine_id, tag.name, tag.unit)
            batch.samples.append(sample_row(run_pk, tag_id, tag.tick, tag.value))
            self.compactor.sample_added((run_pk, tag_id), tag.tick, batch.now)

    def _run_stopped(self, batch: _Batch, op: BatchOp, msg: RunStopped) -> None:
        pk = self.runs.run_pk(batch.conn, op, msg.run_id, msg.time, batch.result)
        assert pk is not None
        current = self.runs.open_run(op.engine_id)
        run = (
            current
            if current is not None and current.pk == pk
            else OpenRun(pk, msg.run_id, op.session_id)
        )
        self.runs.close(
            batch.conn, op.engine_id, run, msg.stopped, msg.reason, msg.user, batch.result
        )

    def _control_state(self, batch: _Batch, op: BatchOp, msg: ControlState) -> None:
        batch.conn.execute(
            T_ENGINE.update()
            .where(T_ENGINE.c.id == op.engine_id)
            .values(control_json=msg.model_dump_json(), last_seen=batch.now)
        )
        self.runs.name_batch(batch.conn, msg.run_id, msg.batch_name)
        current = self.runs.open_run(op.engine_id)
        if current is None or current.session_id == op.session_id:
            return
        # A restarted engine that no longer runs the open run would otherwise leave it open
        # until its next RunStarted, which may never come. Messages are stored in seq order,
        # so this state is later than anything the old session reported.
        if msg.run_id is None and msg.state == SystemState.STOPPED:
            evidence = "the restarted engine reports it is stopped"
        elif msg.run_id is not None and msg.run_id != current.run_id:
            evidence = f"the restarted engine reports run {msg.run_id}"
        else:
            return
        self.runs.close_abandoned(
            batch.conn, op.engine_id, current, msg.time, "engine restarted", evidence, batch.result
        )

    def _compare(self, batch: _Batch, op: BatchOp, action: CompareStored) -> None:
        stored = digests.stored_slot(batch.conn, op.engine_id, action.message.seq)
        if stored is None or digests.same_as_stored(stored, action.message, action.digest):
            return
        text = (
            f"integrity error: resent {action.message.type} seq {action.message.seq} differs from "
            "the stored copy; the first copy is kept"
        )
        log.error("engine %s: %s", op.engine_id, text)
        batch.link_error(op, self.runs.current_pk(op.engine_id), text, action.message.seq)

    def _gap(self, batch: _Batch, op: BatchOp, action: RecordGap) -> None:
        count = action.last - action.first + 1
        text = (
            f"link gap: {count} message(s) seq {action.first}..{action.last} were lost "
            f"({action.reason})"
        )
        log.warning("engine %s: %s", op.engine_id, text)
        pk = self.runs.current_pk(op.engine_id)
        batch.link_error(op, pk, text, action.first)
        if pk is not None:
            key = f"gap-{action.first}-{action.last}"
            line = aggregator_line(key, text, batch.now, "messages lost")
            upsert_runlog(batch.conn, pk, key, batch.now, line)


def _stored_message(text: str) -> StoredMessage:
    message = decode(text)
    if not isinstance(message, STORED_MESSAGE_TYPES):
        raise ValueError(f"quarantined {message.type} is not a stored message")
    return message
