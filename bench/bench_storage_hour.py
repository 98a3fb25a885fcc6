"""Storage cost of one simulated hour of the demo units (issue 15 item 6), through the real
ingest path.

    .venv/bin/python bench/bench_storage_hour.py [--seconds 3600] [--db sqlite,postgresql]
        [--src DIR]

The three example units (chromatography, vessel, dosing) run their example methods on their
process models on a fake clock (engine.engine.Engine scanning every 100 ms). `--mode hour`
(default): one run per unit lasting the hour (the chromatography Load block stretched to 49 CV,
the vessel's Hold to 50 min, the dosing method ends in a wait instead of Stop); `--mode repeat`:
each example method as written, started again whenever it stops (128 short runs in an hour,
so per-run rows weigh more). Every message they emit is numbered as
the outbox numbers it and fed through what the aggregator does with a frame: an IngestSession
per engine (rule 5-7 decisions, digests) and the real Storage (apply_and_maintain: the batch,
its digests, sample rows, compaction, digest pruning) on SQLite and on a fresh PostgreSQL
database, one batch per scan of the three units. The storage clock follows simulated time, so
time-driven compaction and pruning happen as they would in an hour. Faster than real time:
nothing waits.

At the end the open runs' samples are compacted (maintain(force_all=True)) and one JSON object
is printed per database: stored values (samples in chunks and recent rows), chunk blob bytes per
value (all, and the chromatography analog readings FT01/PT01/UV01/CT01), and the whole
database's growth per stored value: SQLite file after a WAL checkpoint and VACUUM, PostgreSQL
the sum of pg_total_relation_size of every table after VACUUM FULL, each minus the same
measure of the empty migrated database; the largest tables with their sizes. Byte counts
do not depend on the machine's load (the run's CPU seconds are given for reference).

`--src DIR` runs another checkout's code (e.g. `git archive HEAD | tar -x -C DIR`) with this
venv, to measure before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UNITS = ("chromatography", "vessel", "dosing")
ANALOG = ("FT01", "PT01", "UV01", "CT01")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
WALL_START = 1_800_000_000.0


class Capture:
    """The engine's sink: numbers each message as the outbox does (engine/link/outbox.py)."""

    connected = True

    def __init__(self) -> None:
        self.seq = 0
        self.out: list[Any] = []

    def emit(self, kind: type[Any], /, **fields: Any) -> None:
        self.seq += 1
        self.out.append(kind(seq=self.seq, **fields))


HOUR_EDITS = {
    "chromatography": ("    Mark: Load\n    1 End block", "    Mark: Load\n    49 End block"),
    "vessel": ("    Base: min\n    1 End block", "    Base: min\n    50 End block"),
    "dosing": ("Wait: 2 s\nStop", "Wait: 3600 s\nStop"),
}


def one_hour(name: str, method: str) -> str:
    old, new = HOUR_EDITS[name]
    assert old in method, f"{name}: the example method changed; update HOUR_EDITS"
    return method.replace(old, new)


class Unit:
    def __init__(self, src: Path, name: str, mode: str) -> None:
        from engine.clock import FakeClock
        from engine.engine import Engine
        from engine.model_run import for_simulation
        from engine.uod import load_uod

        uod = for_simulation(load_uod(src / "uod_examples" / f"{name}.py"))
        self.method = (src / "uod_examples" / f"{name}.pcode").read_text()
        self.repeat = mode == "repeat"
        if not self.repeat:
            self.method = one_hour(name, self.method)
        self.clock = FakeClock(wall_start=WALL_START)
        self.sink = Capture()
        self.engine = Engine(
            uod, clock=self.clock, sink=self.sink, method=self.method, computer_name="bench"
        )
        self.runs = 0

    def register_frame(self) -> Any:
        from protocol import PROTOCOL_VERSION, RegisterEngine

        reg = self.engine.registration()
        return RegisterEngine(
            engine_id=reg.engine_id,
            computer_name=reg.computer_name,
            uod_name=reg.uod_name,
            session_id=uuid.uuid4().hex,
            engine_version="bench",
            protocol_version=PROTOCOL_VERSION,
            uod=reg.uod,
            uod_hash=reg.uod_hash,
            method_hash=reg.method_hash,
            clock=WALL_START,
        )

    def scan(self, now: float) -> list[Any]:
        from engine.lang.api import SystemState
        from protocol.models import ControlAction

        self.clock.set(now)
        self.engine.scan(now)
        if self.runs == 0 or (self.repeat and self.engine.state is SystemState.STOPPED):
            self.engine.control(ControlAction.START, "ann")
            self.runs += 1
        out, self.sink.out = self.sink.out, []
        return out


def run(
    storage: Any,
    src: Path,
    seconds: float,
    clock: list[float],
    mode: str,
    warmup: tuple[float, Callable[[], None]] | None = None,
) -> dict[str, Any]:
    from aggregator.ingest_session import (
        CompareStored,
        IngestSession,
        IntegrityError,
        RecordGap,
        Store,
    )
    from aggregator.store import BatchOp

    units = [Unit(src, name, mode) for name in UNITS]
    loop = asyncio.new_event_loop()
    for unit in units:
        loop.run_until_complete(unit.engine.start())
    sessions = []
    for unit in units:
        reg = unit.register_frame()
        stored, _ = storage.register_engine(reg, "bench")
        sessions.append((reg.engine_id, reg.session_id, IngestSession(stored)))
    interval = units[0].engine.scan_interval
    frames = 0
    cpu0 = time.process_time()
    k = 0
    while k * interval <= seconds + 1e-9:
        now = k * interval
        clock[0] = WALL_START + now
        ops = []
        highs = []
        for unit, (engine_id, session_id, session) in zip(units, sessions, strict=True):
            high = 0
            for message in unit.scan(now):
                frames += 1
                raw = message.model_dump_json()
                for action in session.on_message(message, clock[0], raw):
                    assert isinstance(action, Store | CompareStored | IntegrityError | RecordGap)
                    ops.append(BatchOp(engine_id, session_id, action))
                    if isinstance(action, Store):
                        high = max(high, action.message.seq)
            highs.append(high)
        if ops:
            storage.apply_and_maintain(ops)
            for (_, _, session), high in zip(sessions, highs, strict=True):
                if high:
                    session.on_committed(high, clock[0])
        k += 1
        if warmup is not None and abs(k * interval - warmup[0]) < interval / 2:
            storage.maintain(force_all=True)
            warmup[1]()
    storage.maintain(force_all=True)
    cpu = time.process_time() - cpu0
    for unit in units:
        loop.run_until_complete(unit.engine.stop())
    loop.close()
    return {
        "simulated_s": seconds,
        "frames": frames,
        "runs": {name: unit.runs for name, unit in zip(UNITS, units, strict=True)},
        "cpu_s": round(cpu, 1),
    }


SQL_VALUES = (
    "select (select coalesce(sum(count), 0) from sample_chunk)"
    " + (select count(*) from sample_recent)"
)
SQL_CHUNKS = (
    "select coalesce(sum(length(data)), 0), coalesce(sum(count), 0), count(*) from sample_chunk"
)
SQL_ANALOG = (
    "select coalesce(sum(length(c.data)), 0), coalesce(sum(c.count), 0) from sample_chunk c "
    "join tag on tag.id = c.tag_id "
    "where tag.name in ('FT01', 'PT01', 'UV01', 'CT01') and substr(tag.engine_id, 1, 11) = 'bench/Chrom'"
)


def figures(conn: Any) -> dict[str, Any]:
    values = conn.exec_driver_sql(SQL_VALUES).scalar()
    blob, chunk_values, chunks = conn.exec_driver_sql(SQL_CHUNKS).one()
    analog = conn.exec_driver_sql(SQL_ANALOG).one()
    return {
        "stored_values": values,
        "chunks": chunks,
        "chunk_values": chunk_values,
        "chunk_bytes_per_value": round(blob / chunk_values, 3) if chunk_values else None,
        "analog_values": analog[1],
        "analog_chunk_bytes_per_value": round(analog[0] / analog[1], 3) if analog[1] else None,
    }


def sqlite_sizes(path: Path) -> tuple[int, dict[str, int]]:
    con = sqlite3.connect(path)
    try:
        con.execute("pragma wal_checkpoint(TRUNCATE)")
        con.execute("vacuum")
        con.execute("pragma wal_checkpoint(TRUNCATE)")
        tables: dict[str, int] = {}
        try:
            for name, size in con.execute("select name, sum(pgsize) from dbstat group by name"):
                tables[name] = size
        except sqlite3.OperationalError:
            pass
    finally:
        con.close()
    return path.stat().st_size, tables


PG_SIZES = (
    "select c.relname, pg_total_relation_size(c.oid) from pg_class c "
    "join pg_namespace n on n.oid = c.relnamespace "
    "where n.nspname = 'public' and c.relkind = 'r'"
)


def pg_sizes(url: str) -> tuple[int, dict[str, int]]:
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM FULL")
            tables = {name: size for name, size in conn.exec_driver_sql(PG_SIZES)}
    finally:
        engine.dispose()
    return sum(tables.values()), tables


def measure(kind: str, src: Path, seconds: float, mode: str, warm: float) -> dict[str, Any]:
    from aggregator.db import create_db_engine, upgrade
    from aggregator.store import Storage

    clock = [WALL_START]
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            path = Path(tmp) / "setpoint.sqlite3"
            url = f"sqlite:///{path}"
        else:
            import sqlalchemy as sa

            name = "bench_storage_" + uuid.uuid4().hex[:8]
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
        engine = create_db_engine(url)
        try:
            upgrade(engine)
            engine.dispose()
            empty, _ = sqlite_sizes(path) if kind == "sqlite" else pg_sizes(url)
            storage = Storage(engine, clock=lambda: clock[0])
            warm_point: list[tuple[int, int]] = []

            def snapshot() -> None:
                with engine.connect() as conn:
                    values = conn.exec_driver_sql(SQL_VALUES).scalar()
                engine.dispose()
                size = sqlite_sizes(path)[0] if kind == "sqlite" else pg_sizes(url)[0]
                warm_point.append((size, int(values or 0)))

            warming = (warm, snapshot) if warm else None
            result: dict[str, Any] = {
                "db": kind,
                "mode": mode,
                **run(storage, src, seconds + warm, clock, mode, warming),
            }
            with engine.connect() as conn:
                result.update(figures(conn))
            engine.dispose()
            size, tables = sqlite_sizes(path) if kind == "sqlite" else pg_sizes(url)
        finally:
            engine.dispose()
            if kind != "sqlite":
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
                admin.dispose()
    values = result["stored_values"]
    result["db_bytes_empty"] = empty
    result["db_bytes"] = size
    result["db_growth_bytes_per_value"] = round((size - empty) / values, 3) if values else None
    if warm_point:
        # the hour after the warm-up: the tables already hold pages, as a site's database does
        size0, values0 = warm_point[0]
        result["warmup_s"] = warm
        result["hour_values"] = values - values0
        result["hour_growth_bytes_per_value"] = round((size - size0) / (values - values0), 3)
    result["largest_tables_bytes"] = dict(sorted(tables.items(), key=lambda kv: -kv[1])[:8])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--mode", choices=("hour", "repeat"), default="hour")
    parser.add_argument(
        "--warmup", type=float, default=600.0, help="simulated s before the measured hour"
    )
    parser.add_argument("--src", type=Path, default=ROOT, help="checkout whose code runs")
    args = parser.parse_args()
    src = args.src.resolve()
    sys.path.insert(0, str(src))
    os.chdir(src)
    load0 = [round(x, 2) for x in os.getloadavg()]
    for kind in args.db.split(","):
        result = measure(kind, src, args.seconds, args.mode, args.warmup)
        result["src"] = str(src)
        result["load_average"] = [load0, [round(x, 2) for x in os.getloadavg()]]
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
