"""Aggregator ingest benchmark: prints one JSON object.

An aggregator runs as its own process (`python -m aggregator.cli serve`), so its CPU time can be
read from /proc; N simulated engines in this process speak raw protocol frames to it over real
loopback websockets, each keeping a window of unacknowledged frames like the engine's outbox does.

Cases, each on SQLite and on PostgreSQL (127.0.0.1:5432):
- throughput: N engines x 100 tags, sending as fast as acks allow -> tag values stored per second;
- paced:      20 engines x 10 updates/s (10 tags each) -> aggregator CPU per message and % of one
              core, frame -> committed (ack received) latency p50/p99;
- scale:      100 engines x 100 tags at 1 Hz -> aggregator CPU as % of the machine.
Then bytes per stored value: run stopped, samples compacted, chunk bytes / values.

    .venv/bin/python bench/bench_ingest.py [--seconds 15] [--db sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import sqlalchemy as sa
from serve_proc import start_serve
from sim_link import connect_engine

import protocol as p
from aggregator.db import create_db_engine, upgrade
from aggregator.security import new_token, token_hash
from aggregator.store import Storage
from aggregator.store.tables import T_CHUNK, T_RECENT

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    token: str
    db_url: str

    def engine_token(self, engine_id: str) -> str:
        """A new engine token bound to `engine_id`: a token serves one engine only."""
        token = new_token()
        engine = create_db_engine(self.db_url)
        Storage(engine).create_engine_token(engine_id, token_hash(token), engine_id)
        engine.dispose()
        return token

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(db_url: str) -> Server:
    engine = create_db_engine(db_url)
    upgrade(engine)
    token = new_token()
    Storage(engine).create_engine_token("bench-" + uuid.uuid4().hex[:6], token_hash(token))
    engine.dispose()
    process, url = start_serve("--database", db_url, "--log-level", "warning")
    return Server(process, url, token, db_url)


def float32_walk(rng: random.Random, value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value + rng.gauss(0, 0.05)))[0])


@dataclass
class SimEngine:
    index: int
    tags: int
    run_id: str
    window: int = 50
    seq: int = 0
    acked: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    ack_event: asyncio.Event = field(default_factory=asyncio.Event)
    ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, http: aiohttp.ClientSession, server: Server) -> None:
        engine_id = f"bench-{self.index}-{self.run_id}"
        token = await asyncio.to_thread(server.engine_token, engine_id)
        self.ws = await connect_engine(
            http,
            server.url,
            token,
            engine_id,
            [
                p.TagDescription(name=f"T{i:03d}", unit="bar", kind="reading")
                for i in range(self.tags)
            ],
            computer_name="bench",
            engine_version="bench",
            uod_hash="",
            method_hash="",
            max_msg_size=0,
        )
        registered = p.decode((await self.ws.receive()).data)
        assert isinstance(registered, p.Registered), registered
        self.seq = self.acked = registered.last_seq
        rng = random.Random(self.index)
        self.values = [rng.uniform(0, 100) for _ in range(self.tags)]
        self._rng = rng
        asyncio.get_running_loop().create_task(self._read())
        await self.send(
            p.RunStarted(
                seq=self.next_seq(),
                time=time.time(),
                run_id=self.run_id,
                started=time.time(),
                method_version=1,
            )
        )

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            message = p.decode(msg.data)
            if isinstance(message, p.Ack):
                now = time.perf_counter()
                for seq in range(self.acked + 1, message.seq + 1):
                    sent = self.sent_at.pop(seq, None)
                    if sent is not None:
                        self.latencies.append(now - sent)
                self.acked = max(self.acked, message.seq)
                self.ack_event.set()
            elif isinstance(message, p.Ping):
                await self.ws.send_bytes(p.encode(p.CommandResult(id=message.id, ok=True)))

    async def send(self, message: Any) -> None:
        assert self.ws is not None
        while self.seq - self.acked > self.window:
            self.ack_event.clear()
            await self.ack_event.wait()
        self.sent_at[message.seq] = time.perf_counter()
        await self.ws.send_bytes(p.encode(message))

    def sample(self, changed: int) -> p.TagsUpdated:
        t = time.time()
        tags = []
        for i in range(changed):
            self.values[i] = float32_walk(self._rng, self.values[i])
            tags.append(p.TagValue(name=f"T{i:03d}", value=self.values[i], tick=t))
        return p.TagsUpdated(seq=self.next_seq(), time=t, run_id=self.run_id, tags=tags)

    async def stop_run(self) -> None:
        await self.send(
            p.RunStopped(
                seq=self.next_seq(),
                time=time.time(),
                run_id=self.run_id,
                stopped=time.time(),
                reason="stop",
            )
        )

    async def drain(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < self.seq and time.monotonic() < deadline:
            self.ack_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ack_event.wait(), 1.0)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_case(
    server: Server, *, engines: int, tags: int, rate: float | None, seconds: float
) -> dict[str, Any]:
    """rate None: as fast as the ack window allows; else updates per second per engine."""
    run_tag = uuid.uuid4().hex[:6]
    sims = [SimEngine(i, tags, f"bench-{run_tag}-{i}") for i in range(engines)]
    async with aiohttp.ClientSession() as http:
        for sim in sims:
            await sim.connect(http, server)
        for sim in sims:
            await sim.drain()
            sim.latencies.clear()
        cpu0, t0 = cpu_seconds(server.process.pid), time.perf_counter()
        sent = [0] * engines

        async def pump(i: int, sim: SimEngine) -> None:
            interval = None if rate is None else 1.0 / rate
            next_at = time.perf_counter() + (random.random() * interval if interval else 0)
            while time.perf_counter() - t0 < seconds:
                if interval is not None:
                    delay = next_at - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_at += interval
                await sim.send(sim.sample(tags))
                sent[i] += 1

        await asyncio.gather(*(pump(i, s) for i, s in enumerate(sims)))
        for sim in sims:
            await sim.drain()
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(server.process.pid) - cpu0
        latencies = [lat for s in sims for lat in s.latencies]
        for sim in sims:
            await sim.stop_run()
        for sim in sims:
            await sim.drain()
            await sim.close()
    messages = sum(sent)
    return {
        "engines": engines,
        "tags_per_update": tags,
        "rate_per_engine": rate,
        "seconds": round(elapsed, 2),
        "messages": messages,
        "tag_values_stored_per_s": round(messages * tags / elapsed),
        "messages_per_s": round(messages / elapsed, 1),
        "aggregator_cpu_per_message_ms": round(cpu / messages * 1000, 4) if messages else None,
        "aggregator_cpu_per_value_us": round(cpu / (messages * tags) * 1e6, 3)
        if messages
        else None,
        "aggregator_cpu_pct_of_one_core": round(cpu / elapsed * 100, 1),
        "aggregator_cpu_pct_of_machine": round(cpu / elapsed * 100 / (os.cpu_count() or 1), 1),
        "frame_to_commit_ms_p50": round(pct(latencies, 0.5) * 1000, 1),
        "frame_to_commit_ms_p99": round(pct(latencies, 0.99) * 1000, 1),
        "runs": [s.run_id for s in sims],
    }


def bytes_per_value(db_url: str, run_ids: list[str]) -> dict[str, Any]:
    engine = create_db_engine(db_url)
    storage = Storage(engine)
    storage.maintain(force_all=True)
    with engine.connect() as conn:
        pks = [
            r.pk
            for r in conn.execute(
                sa.text("SELECT pk FROM run WHERE run_id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": run_ids},
            )
        ]
        blob = conn.execute(
            sa.select(
                sa.func.sum(sa.func.length(T_CHUNK.c.data)),
                sa.func.sum(T_CHUNK.c.count),
                sa.func.count(),
            ).where(T_CHUNK.c.run_pk.in_(pks))
        ).one()
        recent = conn.execute(
            sa.select(sa.func.count()).select_from(T_RECENT).where(T_RECENT.c.run_pk.in_(pks))
        ).scalar()
    engine.dispose()
    values = int(blob[1] or 0)
    chunks = int(blob[2] or 0)
    # row + index overhead of a chunk row, measured on SQLite: ~60 bytes
    return {
        "values": values,
        "chunks": chunks,
        "recent_rows_left": recent,
        "blob_bytes_per_value": round((blob[0] or 0) / values, 2) if values else None,
        "with_row_overhead_bytes_per_value": round(((blob[0] or 0) + 60 * chunks) / values, 2)
        if values
        else None,
    }


def make_database(kind: str, workdir: str) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{workdir}/bench.sqlite3", lambda: None
    name = "setpoint_bench_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


async def bench(kind: str, seconds: float, engines: int) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="setpoint-bench-")
    db_url, drop = make_database(kind, workdir)
    server = start_server(db_url)
    try:
        throughput = await run_case(server, engines=engines, tags=100, rate=None, seconds=seconds)
        paced = await run_case(server, engines=20, tags=10, rate=10.0, seconds=seconds)
        scale = await run_case(server, engines=100, tags=100, rate=1.0, seconds=seconds)
    finally:
        server.stop()
    size = bytes_per_value(db_url, throughput["runs"] + scale["runs"])
    for case in (throughput, paced, scale):
        del case["runs"]
    if kind == "sqlite":
        size["sqlite_file_bytes"] = os.path.getsize(f"{workdir}/bench.sqlite3")
    drop()
    shutil.rmtree(workdir, ignore_errors=True)
    return {
        "throughput": throughput,
        "paced_20x10Hz": paced,
        "scale_100x100_1Hz": scale,
        "storage": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each case")
    parser.add_argument("--engines", type=int, default=10, help="engines in the throughput case")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }
    for kind in kinds:
        result[kind] = asyncio.run(bench(kind, args.seconds, args.engines))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
