"""API benchmark: prints one JSON object.

The aggregator runs as its own process (`python -m aggregator.cli serve`, SQLite); this process
plays the engine (raw protocol frames) and the browsers (/ws clients), over loopback.

- live latency: an engine sends a live tag update every 50 ms carrying its send time; 1, 10 and
  100 clients subscribed to `unit/<id>/tags` note when each change arrives -> p50/p99 of
  (arrival - send) over every client and update;
- plot: a stored 24-hour run of 100 tags at 1 s (8.64 M values, written as the store's chunks)
  -> time to answer GET /api/runs/{id}/plot (1000 and 100 points per series) for 1, 5 and 100
  tags, and a 1-hour zoom of 5 tags: wall time, and the server process's CPU time per request
  (/proc/PID/stat, 10 ms ticks: a median over several requests), with the load average.

    .venv/bin/python bench/bench_api.py [--updates 200] [--clients 1,10,100] [--skip-plot]
        [--repeats 5]    (--clients "" skips the live cases)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from typing import Any

import aiohttp
import sqlalchemy as sa
from serve_proc import start_serve
from sim_link import answer_pings, connect_engine, stamped_update

import protocol as p
from aggregator.db import create_db_engine, upgrade
from aggregator.models import Run, Tag
from aggregator.security import hash_password, new_token, token_hash
from aggregator.store import Storage

T_RUN: sa.Table = Run.__table__  # type: ignore[attr-defined]
T_TAG: sa.Table = Tag.__table__  # type: ignore[attr-defined]
DAY = 86_400
TAGS = 100


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def prepare(db_url: str, *, plot_run: bool, live_cases: int) -> dict[str, Any]:
    """The database, a session, and one engine token per live case (a token is bound to the
    first engine id that registers with it, and each case's engine has its own id)."""
    engine = create_db_engine(db_url)
    upgrade(engine)
    storage = Storage(engine)
    engine_tokens = [new_token() for _ in range(live_cases)]
    for case, engine_token in enumerate(engine_tokens):
        storage.create_engine_token(f"bench-{case}", token_hash(engine_token))
    storage.add_user("bench", "viewer", hash_password("bench-password"))
    user = storage.user_by_name("bench")
    assert user is not None
    session = new_token()
    storage.create_session(user.id, token_hash(session), 24 * 3600.0)
    info: dict[str, Any] = {"engine_tokens": engine_tokens, "session": session}
    if plot_run:
        info["plot_run"] = "bench-24h"
        info["fill_seconds"] = fill_day(storage, "bench-24h")
    engine.dispose()
    return info


def fill_day(storage: Storage, run_id: str) -> float:
    """A stopped 24-hour run of 100 slowly varying tags at 1 s, stored as compacted chunks."""
    began = time.monotonic()
    t0 = 1_700_000_000.0
    with storage.engine.begin() as conn:
        run_pk = conn.execute(
            T_RUN.insert()
            .values(
                run_id=run_id,
                engine_id="bench-pc/Bench",
                session_id="s",
                started=t0,
                stopped=t0 + DAY,
                stop_reason="stop",
                uod_name="Bench",
                uod_json="{}",
                method_state_json="{}",
            )
            .returning(T_RUN.c.pk)
        ).scalar_one()
        for k in range(TAGS):
            tag_id = conn.execute(
                T_TAG.insert()
                .values(engine_id="bench-pc/Bench", name=f"T{k:03d}", unit="bar")
                .returning(T_TAG.c.id)
            ).scalar_one()
            samples = [
                (t0 + i, round(10 * math.sin(i / (600 + k)) + (i % 7) * 0.01, 3))
                for i in range(DAY)
            ]
            Storage.write_chunks(conn, run_pk, tag_id, samples)
    return time.monotonic() - began


class BenchEngine:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.engine_id = f"bench-{uuid.uuid4().hex[:6]}/Bench"
        self.seq = 0

    async def run(
        self,
        http: aiohttp.ClientSession,
        ready: asyncio.Event,
        go: asyncio.Event,
        updates: int,
        period: float,
    ) -> None:
        ws = await connect_engine(
            http,
            self.url,
            self.token,
            self.engine_id,
            [p.TagDescription(name="FT01", kind="reading")],
        )
        drain = asyncio.create_task(answer_pings(ws))
        ready.set()
        await go.wait()
        next_at = time.monotonic()
        for _ in range(updates):
            self.seq += 1
            await ws.send_bytes(stamped_update(self.seq, ["FT01"], sample=False))
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.sleep(0.5)
        drain.cancel()
        await ws.close()


async def live_latency(
    url: str, info: dict[str, Any], engine_token: str, clients: int, updates: int
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {info['session']}"}
    # no connection limit: the default (100) would leave the 101st websocket waiting forever
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        engine = BenchEngine(url, engine_token)
        ready, go = asyncio.Event(), asyncio.Event()
        engine_task = asyncio.create_task(engine.run(http, ready, go, updates, 0.05))
        await ready.wait()
        topic = f"unit/{engine.engine_id}/tags"
        latencies: list[float] = []
        received = [0] * clients
        sockets = []
        for _ in range(clients):
            for _attempt in range(50):
                ws = await http.ws_connect(f"{url}/ws", headers=auth)
                await ws.send_json({"action": "subscribe", "topic": topic})
                first = json.loads((await ws.receive()).data)
                if first.get("kind") == "snapshot":
                    break
                await ws.close()  # the unit was not registered yet
                await asyncio.sleep(0.05)
            sockets.append(ws)

        async def listen(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                now = time.time()
                frame = json.loads(msg.data)
                if frame.get("type") == "ping":
                    await ws.send_json({"action": "pong"})
                    continue
                if frame.get("topic") != topic:
                    continue
                for tag in frame["data"]:
                    if tag["name"] == "FT01":
                        latencies.append(now - tag["value"])
                        received[index] += 1

        listeners = [asyncio.create_task(listen(i, ws)) for i, ws in enumerate(sockets)]
        go.set()
        await engine_task
        for task in listeners:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    ms = [x * 1000 for x in latencies]
    return {
        "clients": clients,
        "updates_sent": updates,
        "delivered_per_client_min": min(received),
        "p50_ms": round(percentile(ms, 50), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
    }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/PID/stat, clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def plot_times(
    url: str, info: dict[str, Any], pid: int, repeats: int = 5
) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Bearer {info['session']}"}
    run = info["plot_run"]
    t0 = 1_700_000_000.0
    every = ",".join(f"T{k:03d}" for k in range(TAGS))
    # 1000 points: 288 chunks per tag <= 500 buckets, so each chunk is a bucket answered by its
    # summary (576 values per series); 100 points: 1728 s equal buckets, the exact path, most
    # chunks answered by summary, those straddling a bucket edge decoded.
    cases = [
        ("1 tag, 24 h", "T000", ""),
        ("5 tags, 24 h", "T000,T001,T002,T003,T004", ""),
        ("5 tags, 1 h zoom", "T000,T001,T002,T003,T004", f"&start={t0 + 40000}&end={t0 + 43600}"),
        ("100 tags, 24 h", every, ""),
        ("1 tag, 24 h, 100 points", "T000", "&points=100"),
        ("100 tags, 24 h, 100 points", every, "&points=100"),
    ]
    results = []
    async with aiohttp.ClientSession() as http:
        for name, tags, window in cases:
            times = []
            cpu = []
            points = 0
            for _ in range(repeats):
                began = time.perf_counter()
                cpu_before = process_cpu(pid)
                async with http.get(
                    f"{url}/api/runs/{run}/plot?tags={tags}"
                    + ("" if "points" in window else "&points=1000")
                    + window,
                    headers=auth,
                ) as response:
                    body = await response.json()
                    assert response.status == 200, body
                times.append((time.perf_counter() - began) * 1000)
                cpu.append((process_cpu(pid) - cpu_before) * 1000)
                points = max(len(s["t"]) for s in body["series"])
            results.append(
                {
                    "case": name,
                    "median_ms": round(statistics.median(times), 1),
                    "min_ms": round(min(times), 1),
                    "server_cpu_median_ms": round(statistics.median(cpu), 1),
                    "server_cpu_min_ms": round(min(cpu), 1),
                    "points_per_series": points,
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                }
            )
    return results


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = tempfile.mkdtemp(prefix="setpoint-bench-api-")
    db_url = f"sqlite:///{os.path.join(work, 'setpoint.sqlite3')}"
    try:
        live_cases = [int(c) for c in args.clients.split(",") if c]
        info = await asyncio.to_thread(
            prepare, db_url, plot_run=not args.skip_plot, live_cases=len(live_cases)
        )
        process, url = start_serve(  # stderr inherited: the server's warnings show here
            "--database", db_url, "--log-level", "warning", stderr=None
        )
        try:
            out: dict[str, Any] = {"database": "sqlite", "live_latency": []}
            for clients, engine_token in zip(live_cases, info["engine_tokens"], strict=True):
                out["live_latency"].append(
                    await live_latency(url, info, engine_token, clients, args.updates)
                )
            if not args.skip_plot:
                out["plot_fill_seconds"] = round(info["fill_seconds"], 1)
                out["plot"] = await plot_times(url, info, process.pid, args.repeats)
            return out
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--clients", default="1,10,100")
    parser.add_argument("--skip-plot", action="store_true")
    parser.add_argument("--repeats", type=int, default=5, help="requests per plot case")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
