"""Engine clock offsets kept with each run (issue 16 item 6, ALCOA+: contemporaneous and
attributable): the aggregator clock minus the engine clock, measured when the engine registers
(its RegisterEngine.clock) and at every heartbeat (Heartbeat.time, so the figure also holds the
one-way network delay, normally milliseconds). A run stores the first measurement known while it
is open and every later one that moved by more than MOVE seconds, so a long run keeps a short
table that still shows when and by how much an engine's clock drifted or was stepped."""

from __future__ import annotations

import asyncio
import logging
import time

import sqlalchemy as sa
from sqlmodel import SQLModel

from aggregator import models as m
from aggregator.context import AppContext

T_OFFSET = SQLModel.metadata.tables[str(m.RunClockOffset.__tablename__)]
T_RUN = SQLModel.metadata.tables[str(m.Run.__tablename__)]
MOVE = 0.1
"""Seconds the offset must move before a run stores it again."""

log = logging.getLogger(__name__)


def store_offset(
    engine: sa.Engine, engine_id: str, run_id: str, at: float, offset: float, source: str
) -> bool:
    """False when the run is not stored yet (its RunStarted still on the way)."""
    with engine.begin() as conn:
        pk = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).scalar()
        if pk is None:
            return False
        conn.execute(
            T_OFFSET.insert().values(
                run_pk=pk, engine_id=engine_id, time=at, offset=offset, source=source
            )
        )
    return True


class ClockOffsets:
    """One engine connection's measurements; stores them for the open run on the writer."""

    def __init__(self, ctx: AppContext, engine_id: str) -> None:
        self._ctx = ctx
        self._engine_id = engine_id
        self._stored: tuple[str, float] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def measured(self, offset: float, source: str, run_id: str | None) -> None:
        if run_id is None:
            return
        stored = self._stored
        if stored is not None and stored[0] == run_id and abs(stored[1] - offset) <= MOVE:
            return
        self._stored = (run_id, offset)
        task = asyncio.ensure_future(self._store(run_id, time.time(), offset, source))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(self, run_id: str, at: float, offset: float, source: str) -> None:
        try:
            ok = await self._ctx.writer.call(
                store_offset, self._ctx.storage.engine, self._engine_id, run_id, at, offset, source
            )
        except Exception:
            log.exception("storing the clock offset of %s failed", self._engine_id)
            ok = False
        if not ok and self._stored == (run_id, offset):
            self._stored = None  # measured again at the next heartbeat
