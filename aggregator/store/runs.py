"""The run lifecycle on the ingest path: opening and closing runs (also those an engine left
without RunStopped), the method versions a run used, and the run log and error log entries.

Runs on the writer thread only (aggregator.store.ingest), inside the batch's transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from aggregator.store.batch import BatchOp, BatchResult, StoredError
from aggregator.store.compaction import Compactor
from aggregator.store.registration import Registry
from aggregator.store.tables import T_ENGINE, T_ERRORS, T_RUN, T_RUN_METHOD, T_RUNLOG
from protocol import Method

AGGREGATOR = "aggregator"
"""`stopped_by` of a run the aggregator closed because the engine moved on without RunStopped."""


@dataclass
class OpenRun:
    pk: int
    run_id: str
    session_id: str
    """The engine session that opened it: another session means the engine restarted."""


class Runs:
    """Owns the writer's caches of open runs, run ids and each engine's last method."""

    def __init__(self, registry: Registry, compactor: Compactor) -> None:
        self._registry = registry
        self._compactor = compactor
        self.reset()

    def reset(self) -> None:
        self._loaded = False
        self._open: dict[str, OpenRun] = {}
        self._pks: dict[str, int] = {}
        self._last_method: dict[str, Method] = {}

    def load(self, conn: Connection) -> None:
        if self._loaded:
            return
        for row in conn.execute(
            sa.select(T_RUN.c.pk, T_RUN.c.run_id, T_RUN.c.engine_id, T_RUN.c.session_id).where(
                T_RUN.c.stopped.is_(None)
            )
        ):
            self._open[row.engine_id] = OpenRun(row.pk, row.run_id, row.session_id)
        self._loaded = True

    def refresh(self, conn: Connection, engine_id: str) -> None:
        """Read one engine's open run and last method again: another node stored its frames
        since we did (run ids and their pks never change, so those stay cached)."""
        self.load(conn)
        self._open.pop(engine_id, None)
        self._last_method.pop(engine_id, None)
        row = conn.execute(
            sa.select(T_RUN.c.pk, T_RUN.c.run_id, T_RUN.c.session_id).where(
                T_RUN.c.engine_id == engine_id, T_RUN.c.stopped.is_(None)
            )
        ).first()
        if row is not None:
            self._open[engine_id] = OpenRun(row.pk, row.run_id, row.session_id)

    def open_run(self, engine_id: str) -> OpenRun | None:
        return self._open.get(engine_id)

    def current_pk(self, engine_id: str) -> int | None:
        current = self._open.get(engine_id)
        return None if current is None else current.pk

    def exists(self, conn: Connection, run_id: str) -> bool:
        return (
            run_id in self._pks
            or conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).first()
            is not None
        )

    def run_pk(
        self, conn: Connection, op: BatchOp, run_id: str | None, t: float, result: BatchResult
    ) -> int | None:
        """The run a message belongs to. A run whose RunStarted was lost (a recorded gap) is
        opened on its first message rather than dropping its data."""
        if run_id is None:
            return None
        pk = self._pks.get(run_id)
        if pk is not None:
            return pk
        row = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).first()
        if row is not None:
            self._pks[run_id] = int(row.pk)
            return int(row.pk)
        pk = self.start(conn, op, result, run_id, t)
        text = f"run {run_id} opened from its data: its RunStarted message never arrived"
        record_error(conn, result, StoredError(op.engine_id, pk, t, "warning", "link", text, None))
        return pk

    def start(
        self,
        conn: Connection,
        op: BatchOp,
        result: BatchResult,
        run_id: str,
        started: float,
        *,
        method_version: int = 0,
        user: str | None = None,
        run_counter: int = 0,
    ) -> int:
        """Open a run, closing the engine's open one if it is another."""
        current = self._open.get(op.engine_id)
        if current is not None and current.run_id != run_id:
            restarted = current.session_id != op.session_id
            reason = "engine restarted" if restarted else f"superseded by run {run_id}"
            self.close_abandoned(
                conn, op.engine_id, current, started, reason, f"run {run_id} started", result
            )
        uod = self._registry.uod(conn, op.engine_id)
        inserted = conn.execute(
            T_RUN.insert().values(
                run_id=run_id,
                engine_id=op.engine_id,
                session_id=op.session_id,
                started=started,
                started_by=user,
                run_counter=run_counter,
                method_version=method_version,
                uod_name=uod.name,
                uod_hash=uod.hash,
                uod_json=uod.json,
                method_state_json="{}",
            )
        ).inserted_primary_key
        assert inserted is not None
        pk = int(inserted[0])
        self._pks[run_id] = pk
        self._open[op.engine_id] = OpenRun(pk, run_id, op.session_id)
        method = self._last_method.get(op.engine_id) or self._load_method(conn, op.engine_id)
        if method is not None:
            _add_run_method(conn, pk, method)
        result.runs_opened.append((op.engine_id, run_id))
        return pk

    def close_abandoned(
        self,
        conn: Connection,
        engine_id: str,
        run: OpenRun,
        t: float,
        reason: str,
        evidence: str,
        result: BatchResult,
    ) -> None:
        """Close a run the engine left without RunStopped, saying so in its run log and the
        error log, so nobody wonders why it has no stop of its own."""
        self.close(conn, engine_id, run, t, reason, AGGREGATOR, result)
        note = f"run {run.run_id} closed: {reason} (no RunStopped received; {evidence})"
        record_error(conn, result, StoredError(engine_id, run.pk, t, "warning", "link", note, None))
        key = f"aggregator-close-{run.run_id}"
        upsert_runlog(conn, run.pk, key, t, aggregator_line(key, note, t, reason))

    def close(
        self,
        conn: Connection,
        engine_id: str,
        run: OpenRun,
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
        if self._open.get(engine_id) == run:
            del self._open[engine_id]
        self._compactor.run_closed(run.pk)
        result.runs_closed.append((engine_id, run.run_id))

    def name_batch(self, conn: Connection, run_id: str | None, batch_name: str) -> None:
        """Keep the `Batch:` name the engine reports (in ControlState) on the run it names; a
        later empty name (the method ended) does not erase it."""
        if run_id is None or not batch_name:
            return
        conn.execute(
            T_RUN.update()
            .where(T_RUN.c.run_id == run_id, T_RUN.c.batch_name != batch_name[:256])
            .values(batch_name=batch_name[:256])
        )

    def set_method(self, conn: Connection, engine_id: str, method: Method) -> None:
        """The engine's method changed: remember it, and add it to the open run's versions."""
        self._last_method[engine_id] = method
        conn.execute(
            T_ENGINE.update()
            .where(T_ENGINE.c.id == engine_id)
            .values(method_json=method.model_dump_json())
        )
        pk = self.current_pk(engine_id)
        if pk is not None:
            _add_run_method(conn, pk, method)

    def _load_method(self, conn: Connection, engine_id: str) -> Method | None:
        text = conn.execute(
            sa.select(T_ENGINE.c.method_json).where(T_ENGINE.c.id == engine_id)
        ).scalar()
        if not text or text == "{}":
            return None
        method = Method.model_validate_json(text)
        self._last_method[engine_id] = method
        return method


def _add_run_method(conn: Connection, run_pk: int, method: Method) -> None:
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


def upsert_runlog(
    conn: Connection, run_pk: int, key: str, start: float, data: dict[str, Any]
) -> None:
    """Store a run log line; a line already stored under the key is replaced."""
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


def aggregator_line(key: str, text: str, t: float, error: str) -> dict[str, Any]:
    """A failed run log line of the aggregator's own (a gap, a run closed on the engine's
    behalf), in the shape of the engine's run log lines."""
    return {
        "id": key,
        "text": text,
        "start": t,
        "end": t,
        "state": "failed",
        "line_id": None,
        "user": None,
        "error": error,
        "source": "aggregator",
    }


def record_error(conn: Connection, result: BatchResult, error: StoredError) -> None:
    conn.execute(
        T_ERRORS.insert().values(
            engine_id=error.engine_id,
            run_pk=error.run_pk,
            time=error.time,
            level=error.level,
            source=error.source,
            message=error.message,
            seq=error.seq,
        )
    )
    result.errors.append(error)
