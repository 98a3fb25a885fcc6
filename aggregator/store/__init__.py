"""All database work of the aggregator, synchronous, run on worker threads.

The ingest path goes through one writer thread (`apply_batch`), which owns the caches below:
with a single writer the caches can never disagree with the database, except after a failed
transaction, when they are simply dropped and reloaded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from aggregator import models as m
from aggregator.chunks import Sample, chunk_summary, decode_chunk, encode_chunk
from aggregator.decimate import decimate
from aggregator.ingest_session import (
    CompareStored,
    IntegrityError,
    RecordGap,
    Store,
    same_content,
)
from aggregator.store import plot_plan
from aggregator.store.plot_plan import ChunkSummary, Extremes, Plot
from protocol import (
    ControlState,
    ErrorLog,
    Method,
    MethodState,
    RegisterEngine,
    RunLog,
    RunStarted,
    RunStopped,
    ScalarValue,
    SystemState,
    TagsUpdated,
)

log = logging.getLogger(__name__)

T_ENGINE = m.Engine.__table__  # type: ignore[attr-defined]
T_SEQ = m.EngineSeq.__table__  # type: ignore[attr-defined]
T_RECEIVED = m.ReceivedMessage.__table__  # type: ignore[attr-defined]
T_RUN = m.Run.__table__  # type: ignore[attr-defined]
T_RUN_METHOD = m.RunMethod.__table__  # type: ignore[attr-defined]
T_TAG = m.Tag.__table__  # type: ignore[attr-defined]
T_RECENT = m.SampleRecent.__table__  # type: ignore[attr-defined]
T_CHUNK = m.SampleChunk.__table__  # type: ignore[attr-defined]
T_RUNLOG = m.RunLogEntry.__table__  # type: ignore[attr-defined]
T_ERRORS = m.ErrorLogEntry.__table__  # type: ignore[attr-defined]
T_TOKEN = m.EngineToken.__table__  # type: ignore[attr-defined]
T_USER = m.User.__table__  # type: ignore[attr-defined]
T_SESSION = m.SessionToken.__table__  # type: ignore[attr-defined]

CHUNK_SAMPLES = 300
"""Compact a tag's recent samples once this many have gathered ..."""
CHUNK_SECONDS = 300.0
"""... or once they span this long (sample time), or have waited this long (wall time)."""
AGGREGATOR = "aggregator"
"""`stopped_by` of a run the aggregator closed because the engine moved on without RunStopped."""
DIGEST_RETENTION = 10_000
"""Digests kept per engine for rule 6. A resend reaches back at most to the engine's unacked
window (2 x 1000 frames in the link's default policy); older seqs are below Registered.last_seq
and never resent."""


# Built once: constructing a statement costs more than executing it.
_SEQ_UPDATE = (
    T_SEQ.update()
    .where(T_SEQ.c.engine_id == sa.bindparam("e"), T_SEQ.c.last_seq < sa.bindparam("s"))
    .values(last_seq=sa.bindparam("s"), updated=sa.bindparam("now"))
)


@dataclass(frozen=True)
class BatchOp:
    """One decision of an IngestSession, with the engine and session it came from."""

    engine_id: str
    session_id: str
    action: Store | CompareStored | IntegrityError | RecordGap


@dataclass
class BatchResult:
    """What a committed batch changed that the live side wants to know."""

    errors: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    runs_opened: list[tuple[str, str]] = field(default_factory=list)
    runs_closed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _OpenRun:
    pk: int
    run_id: str
    session_id: str


@dataclass
class _RecentKey:
    count: int
    t_min: float
    t_max: float
    wall_first: float


SampleRow = tuple[int, int, float, float | None, str | None, str]

_SUMMARY_COLUMNS = (
    T_CHUNK.c.id,
    T_CHUNK.c.t_first,
    T_CHUNK.c.count.label("n"),
    T_CHUNK.c.v_kind,
    T_CHUNK.c.v_min,
    T_CHUNK.c.t_min,
    T_CHUNK.c.v_max,
    T_CHUNK.c.t_max,
    T_CHUNK.c.v_first,
    T_CHUNK.c.v_last,
)
"""What a plot reads of a chunk row instead of its blob (after the t_last _window_chunks adds)."""


def _chunk_summary(row: sa.Row[Any]) -> ChunkSummary:
    t_last, chunk_id, t_first, size, kind, *extremes = tuple(row)
    summary = None if kind is None else Extremes(kind, *extremes)
    return ChunkSummary(chunk_id, t_first, t_last, size, summary)


def stored_time(t: float) -> float:
    """Sample times are kept to the microsecond (chunks store whole microseconds); rounding
    every stored time the same way keeps window bounds and stored times comparable."""
    return round(t * 1_000_000) / 1_000_000


def _sample_row(run_pk: int, tag_id: int, t: float, value: ScalarValue) -> SampleRow:
    """(run_pk, tag_id, t, num, text, kind): a tuple, inserted below SQLAlchemy's per-row work."""
    t = stored_time(t)
    if type(value) is float:
        return (run_pk, tag_id, t, value, None, "f")
    if isinstance(value, bool):
        return (run_pk, tag_id, t, float(value), None, "b")
    if isinstance(value, int):
        if abs(value) < 2**53:
            return (run_pk, tag_id, t, float(value), None, "i")
        return (run_pk, tag_id, t, None, str(value), "i")
    if value is None:
        return (run_pk, tag_id, t, None, None, "n")
    return (run_pk, tag_id, t, None, str(value), "s")


def _row_value(kind: str, num: float | None, text: str | None) -> ScalarValue:
    if kind == "f":
        return num
    if kind == "i":
        return (
            int(text) if num is None and text is not None else (None if num is None else int(num))
        )
    if kind == "b":
        return None if num is None else bool(num)
    if kind == "s":
        return text
    return None


class Storage:
    def __init__(self, engine: Engine, *, clock: Any = time.time) -> None:
        self.engine = engine
        self._clock = clock
        self.is_sqlite = engine.dialect.name == "sqlite"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._insert_received = (
            "INSERT INTO received_message (engine_id, seq, kind, digest, received) "
            f"VALUES ({', '.join([mark] * 5)})"
        )
        self._insert_samples = (
            "INSERT INTO sample_recent (run_pk, tag_id, t, num, text, kind) "
            f"VALUES ({', '.join([mark] * 6)})"
        )
        self._reset_caches()
        self._last_time_check = 0.0
        self._last_prune = 0.0

    # --- caches ---------------------------------------------------------------------------------

    def _reset_caches(self) -> None:
        self._loaded = False
        self._tag_ids: dict[tuple[str, str], int] = {}
        self._open_runs: dict[str, _OpenRun] = {}
        self._run_pks: dict[str, int] = {}
        self._recent: dict[tuple[int, int], _RecentKey] = {}
        self._due: set[tuple[int, int]] = set()
        self._engine_uod: dict[str, tuple[str, str, str]] = {}
        self._last_method: dict[str, Method] = {}
        self._final: set[int] = set()

    def _load(self, conn: Connection) -> None:
        if self._loaded:
            return
        for row in conn.execute(
            sa.select(T_RUN.c.pk, T_RUN.c.run_id, T_RUN.c.engine_id, T_RUN.c.session_id).where(
                T_RUN.c.stopped.is_(None)
            )
        ):
            self._open_runs[row.engine_id] = _OpenRun(row.pk, row.run_id, row.session_id)
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
            self._recent[key] = _RecentKey(row[2], row[3], row[4], now)
            if row[2] >= CHUNK_SAMPLES:
                self._due.add(key)
        for row in conn.execute(
            sa.select(T_RUN.c.pk)
            .where(T_RUN.c.stopped.is_not(None))
            .where(T_RUN.c.pk.in_(sa.select(T_RECENT.c.run_pk).distinct()))
        ):
            self._final.add(row.pk)
        self._loaded = True

    # --- migrations-free helpers used by CLI and API ----------------------------------------------

    def create_engine_token(self, name: str, token_digest: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_TOKEN.c.id).where(T_TOKEN.c.name == name)).first():
                raise ValueError(f"an engine token named {name!r} already exists")
            conn.execute(
                T_TOKEN.insert().values(
                    name=name, token_hash=token_digest, created=self._clock(), revoked=False
                )
            )

    def engine_token_name(self, token_digest: str) -> str | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_TOKEN.c.name).where(
                    T_TOKEN.c.token_hash == token_digest, T_TOKEN.c.revoked.is_(False)
                )
            ).first()
        return None if row is None else str(row.name)

    def add_user(self, name: str, role: str, password_hash: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(T_USER.c.id).where(T_USER.c.name == name)).first():
                raise ValueError(f"a user named {name!r} already exists")
            conn.execute(
                T_USER.insert().values(
                    name=name, role=role, password_hash=password_hash, created=self._clock()
                )
            )

    def user_by_name(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T_USER).where(T_USER.c.name == name)).first()
        return None if row is None else dict(row._mapping)

    def create_session(self, user_id: int, token_digest: str, lifetime: float) -> None:
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(T_SESSION.delete().where(T_SESSION.c.expires < now))
            conn.execute(
                T_SESSION.insert().values(
                    token_hash=token_digest, user_id=user_id, created=now, expires=now + lifetime
                )
            )

    def session_user(self, token_digest: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_USER.c.id, T_USER.c.name, T_USER.c.role)
                .select_from(T_SESSION.join(T_USER, T_USER.c.id == T_SESSION.c.user_id))
                .where(T_SESSION.c.token_hash == token_digest, T_SESSION.c.expires > self._clock())
            ).first()
        return None if row is None else dict(row._mapping)

    # --- registration ----------------------------------------------------------------------------

    def register_engine(self, reg: RegisterEngine, token_name: str) -> tuple[int, str | None]:
        """Record the engine and its UOD; return (last stored seq, open run id)."""
        uod_json = reg.uod.model_dump_json()
        now = self._clock()
        values = {
            "computer_name": reg.computer_name,
            "uod_name": reg.uod_name,
            "session_id": reg.session_id,
            "engine_version": reg.engine_version,
            "protocol_version": reg.protocol_version,
            "uod_json": uod_json,
            "uod_hash": reg.uod_hash,
            "method_hash": reg.method_hash,
            "token_name": token_name,
            "registered_at": now,
            "last_seen": now,
        }
        try:
            with self.engine.begin() as conn:
                self._load(conn)
                if conn.execute(
                    sa.select(T_ENGINE.c.id).where(T_ENGINE.c.id == reg.engine_id)
                ).first():
                    conn.execute(
                        T_ENGINE.update().where(T_ENGINE.c.id == reg.engine_id).values(**values)
                    )
                else:
                    conn.execute(
                        T_ENGINE.insert().values(id=reg.engine_id, control_json="{}", **values)
                    )
                for tag in reg.uod.tags:
                    self._tag_id(conn, reg.engine_id, tag.name, tag.unit, update_unit=True)
                row = conn.execute(
                    sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == reg.engine_id)
                ).first()
                last_seq = 0 if row is None else int(row.last_seq)
                if row is None:
                    conn.execute(
                        T_SEQ.insert().values(engine_id=reg.engine_id, last_seq=0, updated=now)
                    )
        except Exception:
            self._reset_caches()
            raise
        self._engine_uod[reg.engine_id] = (uod_json, reg.uod_hash, reg.uod_name)
        open_run = self._open_runs.get(reg.engine_id)
        return last_seq, None if open_run is None else open_run.run_id

    def _tag_id(
        self,
        conn: Connection,
        engine_id: str,
        name: str,
        unit: str | None,
        update_unit: bool = False,
    ) -> int:
        key = (engine_id, name)
        tag_id = self._tag_ids.get(key)
        if tag_id is not None and not update_unit:
            return tag_id
        row = conn.execute(
            sa.select(T_TAG.c.id, T_TAG.c.unit).where(
                T_TAG.c.engine_id == engine_id, T_TAG.c.name == name
            )
        ).first()
        if row is None:
            inserted = conn.execute(
                T_TAG.insert().values(engine_id=engine_id, name=name, unit=unit)
            ).inserted_primary_key
            assert inserted is not None
            tag_id = int(inserted[0])
        else:
            tag_id = int(row.id)
            if unit is not None and row.unit != unit:
                conn.execute(T_TAG.update().where(T_TAG.c.id == tag_id).values(unit=unit))
        self._tag_ids[key] = tag_id
        return tag_id

    # --- the ingest batch ------------------------------------------------------------------------

    def apply_batch(self, ops: Sequence[BatchOp]) -> BatchResult:
        """Store a batch in one transaction. Raises on failure, having rolled back everything.

        Each message is applied in its own SAVEPOINT: one that fails unexpectedly (a bug, a
        constraint we did not foresee) is rolled back alone, logged in its engine's error log
        and still counted as stored, so the other engines' frames of the batch commit and every
        stream goes on instead of all of them being disconnected to resend the same failure."""
        result = BatchResult()
        high: dict[str, int] = {}
        failed = False
        try:
            with self.engine.begin() as conn:
                if self.is_sqlite:
                    # pysqlite begins a transaction only before the first INSERT/UPDATE/DELETE:
                    # a SAVEPOINT before that would open it, and its RELEASE commit it, piece by
                    # piece. Begin it here (IMMEDIATE: this thread is the only writer anyway).
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                self._load(conn)
                received: list[tuple[str, int, str, str, float]] = []
                samples: list[SampleRow] = []
                now = self._clock()
                for op in ops:
                    action = op.action
                    if isinstance(action, Store):
                        msg = action.message
                        received.append((op.engine_id, msg.seq, msg.type, action.digest, now))
                        high[op.engine_id] = max(high.get(op.engine_id, 0), msg.seq)
                        failed |= not self._apply_one(conn, op, msg, samples, result, now)
                    elif isinstance(action, CompareStored):
                        self._compare(conn, op, action, result, now)
                    elif isinstance(action, IntegrityError):
                        log.error("engine %s: integrity error: %s", op.engine_id, action.text)
                        self._error(
                            conn,
                            op.engine_id,
                            self._current_pk(op.engine_id),
                            now,
                            "error",
                            "link",
                            f"integrity error: {action.text}",
                            action.seq,
                            result,
                        )
                    else:
                        self._gap(conn, op, action, result, now)
                        high[op.engine_id] = max(high.get(op.engine_id, 0), action.last)
                if received:
                    conn.exec_driver_sql(self._insert_received, received)
                if samples:
                    conn.exec_driver_sql(self._insert_samples, samples)
                if high:
                    conn.execute(
                        _SEQ_UPDATE,
                        [{"e": e, "s": seq, "now": now} for e, seq in high.items()],
                    )
        except Exception:
            self._reset_caches()
            raise
        if failed:
            self._reset_caches()  # reload with this batch's samples counted (compaction)
        return result

    def _apply_one(
        self,
        conn: Connection,
        op: BatchOp,
        msg: Any,
        samples: list[SampleRow],
        result: BatchResult,
        now: float,
    ) -> bool:
        """Apply one message in a SAVEPOINT (see apply_batch); False when it failed."""
        marks = (len(samples), len(result.errors), len(result.runs_opened), len(result.runs_closed))
        try:
            with conn.begin_nested():
                self._apply(conn, op, msg, samples, result, now)
            return True
        except Exception as exc:
            log.exception("engine %s: storing %s seq %d failed", op.engine_id, msg.type, msg.seq)
            del samples[marks[0] :]
            del result.errors[marks[1] :]
            del result.runs_opened[marks[2] :]
            del result.runs_closed[marks[3] :]
            # the caches may name rows the savepoint rolled back: reload them from here
            self._reset_caches()
            self._load(conn)
            self._error(
                conn,
                op.engine_id,
                self._current_pk(op.engine_id),
                now,
                "error",
                "aggregator",
                f"{msg.type} seq {msg.seq} could not be stored and is lost "
                f"({type(exc).__name__}: {str(exc)[:200]})",
                msg.seq,
                result,
            )
            return False

    def _run_pk(
        self, conn: Connection, op: BatchOp, run_id: str | None, t: float, result: BatchResult
    ) -> int | None:
        """The run a message belongs to. A run whose RunStarted was lost (a recorded gap) is
        opened on its first message rather than dropping its data."""
        if run_id is None:
            return None
        pk = self._run_pks.get(run_id)
        if pk is not None:
            return pk
        row = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).first()
        if row is not None:
            self._run_pks[run_id] = int(row.pk)
            return int(row.pk)
        pk = self._open_run(conn, op, run_id, t, 0, None, 0, result)
        self._error(
            conn,
            op.engine_id,
            pk,
            t,
            "warning",
            "link",
            f"run {run_id} opened from its data: its RunStarted message never arrived",
            None,
            result,
        )
        return pk

    def _open_run(
        self,
        conn: Connection,
        op: BatchOp,
        run_id: str,
        started: float,
        method_version: int,
        user: str | None,
        run_counter: int,
        result: BatchResult,
    ) -> int:
        current = self._open_runs.get(op.engine_id)
        if current is not None and current.run_id != run_id:
            restarted = current.session_id != op.session_id
            reason = "engine restarted" if restarted else f"superseded by run {run_id}"
            self._close_abandoned(
                conn, op.engine_id, current, started, reason, f"run {run_id} started", result
            )
        uod_json, uod_hash, uod_name = self._engine_uod.get(op.engine_id) or self._load_uod(
            conn, op.engine_id
        )
        pk = int(
            conn.execute(
                T_RUN.insert().values(
                    run_id=run_id,
                    engine_id=op.engine_id,
                    session_id=op.session_id,
                    started=started,
                    started_by=user,
                    run_counter=run_counter,
                    method_version=method_version,
                    uod_name=uod_name,
                    uod_hash=uod_hash,
                    uod_json=uod_json,
                    method_state_json="{}",
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )
        self._run_pks[run_id] = pk
        self._open_runs[op.engine_id] = _OpenRun(pk, run_id, op.session_id)
        method = self._last_method.get(op.engine_id) or self._load_method(conn, op.engine_id)
        if method is not None:
            self._add_run_method(conn, pk, method)
        result.runs_opened.append((op.engine_id, run_id))
        return pk

    def _close_abandoned(
        self,
        conn: Connection,
        engine_id: str,
        run: _OpenRun,
        t: float,
        reason: str,
        evidence: str,
        result: BatchResult,
    ) -> None:
        """Close a run the engine left without RunStopped, saying so in its run log and the
        error log, so nobody wonders why it has no stop of its own."""
        self._close_run(conn, engine_id, run, t, reason, AGGREGATOR, result)
        note = f"run {run.run_id} closed: {reason} (no RunStopped received; {evidence})"
        self._error(conn, engine_id, run.pk, t, "warning", "link", note, None, result)
        key = f"aggregator-close-{run.run_id}"
        self._upsert_runlog(
            conn,
            run.pk,
            key,
            t,
            {
                "id": key,
                "text": note,
                "start": t,
                "end": t,
                "state": "failed",
                "line_id": None,
                "user": None,
                "error": reason,
                "source": "aggregator",
            },
        )

    def _load_method(self, conn: Connection, engine_id: str) -> Method | None:
        text = conn.execute(
            sa.select(T_ENGINE.c.method_json).where(T_ENGINE.c.id == engine_id)
        ).scalar()
        if not text or text == "{}":
            return None
        method = Method.model_validate_json(text)
        self._last_method[engine_id] = method
        return method

    def _load_uod(self, conn: Connection, engine_id: str) -> tuple[str, str, str]:
        row = conn.execute(
            sa.select(T_ENGINE.c.uod_json, T_ENGINE.c.uod_hash, T_ENGINE.c.uod_name).where(
                T_ENGINE.c.id == engine_id
            )
        ).first()
        value = ("{}", "", "") if row is None else (row.uod_json, row.uod_hash, row.uod_name)
        self._engine_uod[engine_id] = value
        return value

    def _close_run(
        self,
        conn: Connection,
        engine_id: str,
        run: _OpenRun,
        stopped: float,
        reason: str,
        user: str | None,
        result: BatchResult,
    ) -> None:
        # A run the aggregator closed on the engine's behalf still takes the engine's own
        # RunStopped if that arrives later: the engine knows best when and why it stopped.
        conn.execute(
            T_RUN.update()
            .where(
                T_RUN.c.pk == run.pk,
                sa.or_(T_RUN.c.stopped.is_(None), T_RUN.c.stopped_by == AGGREGATOR),
            )
            .values(stopped=stopped, stop_reason=reason, stopped_by=user)
        )
        if self._open_runs.get(engine_id) == run:
            del self._open_runs[engine_id]
        self._final.add(run.pk)
        result.runs_closed.append((engine_id, run.run_id))

    def _add_run_method(self, conn: Connection, run_pk: int, method: Method) -> None:
        exists = conn.execute(
            sa.select(T_RUN_METHOD.c.id).where(
                T_RUN_METHOD.c.run_pk == run_pk, T_RUN_METHOD.c.version == method.version
            )
        ).first()
        if exists is None:
            conn.execute(
                T_RUN_METHOD.insert().values(
                    run_pk=run_pk,
                    version=method.version,
                    time=method.time,
                    user=method.user,
                    lines_json=json.dumps([line.model_dump(mode="json") for line in method.lines]),
                )
            )

    def _upsert_runlog(
        self, conn: Connection, run_pk: int, key: str, start: float, data: dict[str, Any]
    ) -> None:
        text = json.dumps(data, separators=(",", ":"))
        updated = conn.execute(
            T_RUNLOG.update()
            .where(T_RUNLOG.c.run_pk == run_pk, T_RUNLOG.c.line_key == key)
            .values(start=start, data_json=text)
        )
        if updated.rowcount == 0:
            conn.execute(
                T_RUNLOG.insert().values(run_pk=run_pk, line_key=key, start=start, data_json=text)
            )

    def _error(
        self,
        conn: Connection,
        engine_id: str,
        run_pk: int | None,
        t: float,
        level: str,
        source: str,
        message: str,
        seq: int | None,
        result: BatchResult,
    ) -> None:
        conn.execute(
            T_ERRORS.insert().values(
                engine_id=engine_id,
                run_pk=run_pk,
                time=t,
                level=level,
                source=source,
                message=message,
                seq=seq,
            )
        )
        result.errors.append(
            (
                engine_id,
                {"time": t, "level": level, "source": source, "message": message, "seq": seq},
            )
        )

    def _apply(
        self,
        conn: Connection,
        op: BatchOp,
        msg: Any,
        samples: list[SampleRow],
        result: BatchResult,
        now: float,
    ) -> None:
        engine_id = op.engine_id
        if isinstance(msg, TagsUpdated):
            if not msg.sample:
                return
            run_pk = self._run_pk(conn, op, msg.run_id, msg.time, result)
            if run_pk is None:
                return
            for tag in msg.tags:
                tag_id = self._tag_id(conn, engine_id, tag.name, tag.unit)
                samples.append(_sample_row(run_pk, tag_id, tag.tick, tag.value))
                key = (run_pk, tag_id)
                recent = self._recent.get(key)
                if recent is None:
                    self._recent[key] = _RecentKey(1, tag.tick, tag.tick, now)
                else:
                    recent.count += 1
                    recent.t_min = min(recent.t_min, tag.tick)
                    recent.t_max = max(recent.t_max, tag.tick)
                    if (
                        recent.count >= CHUNK_SAMPLES
                        or recent.t_max - recent.t_min >= CHUNK_SECONDS
                    ):
                        self._due.add(key)
        elif isinstance(msg, RunStarted):
            if (
                msg.run_id in self._run_pks
                or conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == msg.run_id)).first()
            ):
                return
            self._open_run(
                conn,
                op,
                msg.run_id,
                msg.started,
                msg.method_version,
                msg.user,
                msg.run_counter,
                result,
            )
        elif isinstance(msg, RunStopped):
            pk = self._run_pk(conn, op, msg.run_id, msg.time, result)
            assert pk is not None
            current = self._open_runs.get(engine_id)
            run = (
                current
                if current is not None and current.pk == pk
                else _OpenRun(pk, msg.run_id, op.session_id)
            )
            self._close_run(conn, engine_id, run, msg.stopped, msg.reason, msg.user, result)
        elif isinstance(msg, RunLog):
            pk = self._run_pk(conn, op, msg.run_id, msg.time, result) or self._current_pk(engine_id)
            if pk is None:
                return
            for line in msg.lines:
                self._upsert_runlog(conn, pk, line.id, line.start, line.model_dump(mode="json"))
        elif isinstance(msg, Method):
            self._last_method[engine_id] = msg
            conn.execute(
                T_ENGINE.update()
                .where(T_ENGINE.c.id == engine_id)
                .values(method_json=msg.model_dump_json())
            )
            pk = self._current_pk(engine_id)
            if pk is not None:
                self._add_run_method(conn, pk, msg)
        elif isinstance(msg, MethodState):
            pk = self._run_pk(conn, op, msg.run_id, msg.time, result) or self._current_pk(engine_id)
            if pk is not None:
                conn.execute(
                    T_RUN.update()
                    .where(T_RUN.c.pk == pk)
                    .values(method_state_json=msg.model_dump_json())
                )
        elif isinstance(msg, ControlState):
            conn.execute(
                T_ENGINE.update()
                .where(T_ENGINE.c.id == engine_id)
                .values(control_json=msg.model_dump_json(), last_seen=now)
            )
            current = self._open_runs.get(engine_id)
            if current is not None and current.session_id != op.session_id:
                # A restarted engine that no longer runs the open run would otherwise leave it
                # open until its next RunStarted, which may never come. Messages are stored in
                # seq order, so this state is later than anything the old session reported.
                if msg.run_id is None and msg.state == SystemState.STOPPED:
                    evidence = "the restarted engine reports it is stopped"
                elif msg.run_id is not None and msg.run_id != current.run_id:
                    evidence = f"the restarted engine reports run {msg.run_id}"
                else:
                    return
                self._close_abandoned(
                    conn, engine_id, current, msg.time, "engine restarted", evidence, result
                )
        elif isinstance(msg, ErrorLog):
            pk = self._run_pk(conn, op, msg.run_id, msg.time, result) or self._current_pk(engine_id)
            for entry in msg.entries:
                self._error(
                    conn,
                    engine_id,
                    pk,
                    entry.time,
                    entry.level,
                    entry.source,
                    entry.message,
                    msg.seq,
                    result,
                )

    def _current_pk(self, engine_id: str) -> int | None:
        current = self._open_runs.get(engine_id)
        return None if current is None else current.pk

    def _compare(
        self, conn: Connection, op: BatchOp, action: CompareStored, result: BatchResult, now: float
    ) -> None:
        row = conn.execute(
            sa.select(T_RECEIVED.c.digest).where(
                T_RECEIVED.c.engine_id == op.engine_id, T_RECEIVED.c.seq == action.message.seq
            )
        ).first()
        if row is None or same_content(row.digest, action.message, action.digest):
            return
        text = (
            f"integrity error: resent {action.message.type} seq {action.message.seq} differs from "
            "the stored copy; the first copy is kept"
        )
        log.error("engine %s: %s", op.engine_id, text)
        self._error(
            conn,
            op.engine_id,
            self._current_pk(op.engine_id),
            now,
            "error",
            "link",
            text,
            action.message.seq,
            result,
        )

    def _gap(
        self, conn: Connection, op: BatchOp, action: RecordGap, result: BatchResult, now: float
    ) -> None:
        count = action.last - action.first + 1
        text = (
            f"link gap: {count} message(s) seq {action.first}..{action.last} were lost "
            f"({action.reason})"
        )
        log.warning("engine %s: %s", op.engine_id, text)
        pk = self._current_pk(op.engine_id)
        self._error(conn, op.engine_id, pk, now, "error", "link", text, action.first, result)
        if pk is not None:
            key = f"gap-{action.first}-{action.last}"
            self._upsert_runlog(
                conn,
                pk,
                key,
                now,
                {
                    "id": key,
                    "text": text,
                    "start": now,
                    "end": now,
                    "state": "failed",
                    "line_id": None,
                    "user": None,
                    "error": "messages lost",
                    "source": "aggregator",
                },
            )

    def apply_and_maintain(self, ops: Sequence[BatchOp]) -> BatchResult:
        """One trip to the writer thread per batch: store it, then compact what is due. A
        compaction failure does not fail the batch (it is committed); it is retried later."""
        result = self.apply_batch(ops)
        try:
            self.maintain()
        except Exception:
            log.exception("sample compaction failed; it will be retried")
        return result

    # --- compaction ------------------------------------------------------------------------------

    def maintain(self, *, force_all: bool = False) -> int:
        """Compact recent samples into chunks where due. Returns the number of chunks written."""
        now = self._clock()
        if not self._loaded:
            with self.engine.connect() as conn:
                self._load(conn)
        due = set(self._due)
        if self._final:
            due.update(key for key in self._recent if key[0] in self._final)
        if force_all:
            due.update(self._recent)
        if now - self._last_time_check >= 10.0:
            self._last_time_check = now
            due.update(k for k, r in self._recent.items() if now - r.wall_first >= CHUNK_SECONDS)
        written = 0
        if due:
            try:
                with self.engine.begin() as conn:
                    for key in sorted(due):
                        written += self._compact(conn, *key)
            except Exception:
                self._reset_caches()
                raise
            for key in due:
                self._recent.pop(key, None)
                self._due.discard(key)
            self._final.clear()
        if now - self._last_prune >= 60.0:
            self._last_prune = now
            self._prune_digests()
        return written

    def _compact(self, conn: Connection, run_pk: int, tag_id: int) -> int:
        rows = conn.execute(
            sa.select(T_RECENT.c.id, T_RECENT.c.t, T_RECENT.c.num, T_RECENT.c.text, T_RECENT.c.kind)
            .where(T_RECENT.c.run_pk == run_pk, T_RECENT.c.tag_id == tag_id)
            .order_by(T_RECENT.c.t, T_RECENT.c.id)
        ).all()
        if not rows:
            return 0
        samples: list[Sample] = [(r[1], _row_value(r[4], r[2], r[3])) for r in rows]
        written = self.write_chunks(conn, run_pk, tag_id, samples)
        max_id = max(r.id for r in rows)
        conn.execute(
            T_RECENT.delete().where(
                T_RECENT.c.run_pk == run_pk, T_RECENT.c.tag_id == tag_id, T_RECENT.c.id <= max_id
            )
        )
        return written

    @staticmethod
    def write_chunks(conn: Connection, run_pk: int, tag_id: int, samples: Sequence[Sample]) -> int:
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

    def _prune_digests(self) -> None:
        with self.engine.begin() as conn:
            for row in conn.execute(sa.select(T_SEQ.c.engine_id, T_SEQ.c.last_seq)).all():
                conn.execute(
                    T_RECEIVED.delete().where(
                        T_RECEIVED.c.engine_id == row.engine_id,
                        T_RECEIVED.c.seq < row.last_seq - DIGEST_RETENTION,
                    )
                )

    # --- reads -----------------------------------------------------------------------------------

    def last_seq(self, engine_id: str) -> int:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == engine_id)
            ).first()
        return 0 if row is None else int(row.last_seq)

    def _window_chunks(
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

    def _recent_samples(
        self, conn: Connection, run_pk: int, tag_id: int, t0: float, t1: float
    ) -> list[Sample]:
        """The not yet compacted samples of one tag in [t0, t1], in time (then arrival) order."""
        return [
            (r[0], _row_value(r[3], r[1], r[2]))
            for r in conn.execute(
                sa.select(T_RECENT.c.t, T_RECENT.c.num, T_RECENT.c.text, T_RECENT.c.kind)
                .where(
                    T_RECENT.c.run_pk == run_pk,
                    T_RECENT.c.tag_id == tag_id,
                    T_RECENT.c.t >= t0,
                    T_RECENT.c.t <= t1,
                )
                .order_by(T_RECENT.c.t, T_RECENT.c.id)
            )
        ]

    def read_samples(
        self, run_pk: int, tag_id: int, t0: float, t1: float, conn: Connection | None = None
    ) -> tuple[list[Sample], int]:
        """Samples of one tag with t0 <= t <= t1, in time order, and how many chunks were read."""
        if conn is None:
            with self.engine.connect() as own:
                return self.read_samples(run_pk, tag_id, t0, t1, own)
        blobs = [c.data for c in self._window_chunks(conn, run_pk, tag_id, t0, t1, T_CHUNK.c.data)]
        samples: list[Sample] = []
        for blob in blobs:
            samples.extend(s for s in decode_chunk(blob) if t0 <= s[0] <= t1)
        samples.extend(self._recent_samples(conn, run_pk, tag_id, t0, t1))
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
        rows = self._window_chunks(conn, run_pk, tag_id, t0, t1, *_SUMMARY_COLUMNS)
        plot = None
        if rows:
            chunks = [_chunk_summary(row) for row in rows]
            recent = self._recent_samples(conn, run_pk, tag_id, t0, t1)
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

    def run_by_id(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T_RUN).where(T_RUN.c.run_id == run_id)).first()
        return None if row is None else dict(row._mapping)

    def list_runs(
        self, unit_id: str | None, before_pk: int | None, limit: int
    ) -> list[dict[str, Any]]:
        query = (
            sa.select(
                T_RUN.c.pk,
                T_RUN.c.run_id,
                T_RUN.c.engine_id,
                T_RUN.c.started,
                T_RUN.c.stopped,
                T_RUN.c.stop_reason,
                T_RUN.c.started_by,
                T_RUN.c.method_version,
                T_RUN.c.uod_name,
                T_RUN.c.run_counter,
            )
            .order_by(T_RUN.c.pk.desc())
            .limit(limit)
        )
        if unit_id is not None:
            query = query.where(T_RUN.c.engine_id == unit_id)
        if before_pk is not None:
            query = query.where(T_RUN.c.pk < before_pk)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def list_engines(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T_ENGINE).order_by(T_ENGINE.c.id)).all()
            open_runs = {
                r.engine_id: r.run_id
                for r in conn.execute(
                    sa.select(T_RUN.c.engine_id, T_RUN.c.run_id).where(T_RUN.c.stopped.is_(None))
                )
            }
        out = []
        for r in rows:
            d = dict(r._mapping)
            d["open_run_id"] = open_runs.get(r.id)
            out.append(d)
        return out

    def run_log(self, run_pk: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_RUNLOG.c.data_json)
                .where(T_RUNLOG.c.run_pk == run_pk)
                .order_by(T_RUNLOG.c.start, T_RUNLOG.c.id)
            ).all()
        return [json.loads(r.data_json) for r in rows]

    def error_log(self, engine_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_ERRORS).where(T_ERRORS.c.engine_id == engine_id).order_by(T_ERRORS.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def run_methods(self, run_pk: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T_RUN_METHOD)
                .where(T_RUN_METHOD.c.run_pk == run_pk)
                .order_by(T_RUN_METHOD.c.version)
            ).all()
        return [dict(r._mapping) for r in rows]

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
