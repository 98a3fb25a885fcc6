"""Data-path costs of one engine (issue 15 items 3-6), measured from outside the product.

    .venv/bin/python bench/bench_dataplane.py [--seconds 30] [--rtt 40] [--src DIR] [--method FILE]

Starts a real `setpoint-aggregator serve` and a real `setpoint-engine run` on
uod_examples/chromatography.py (100 ms scans) running a method, the engine connected through a
loopback TCP proxy in this process that counts the bytes on the socket each way. Prints one
JSON object with, for the RUN window: bytes/s engine -> aggregator and back (what TCP carried,
websocket framing and compression included), the engine's CPU (utime+stime from /proc, % of one
core) and resident memory, start-to-online; then the operator command round trip (POST inject
"PU01: k %" -> a /ws client subscribed to unit/<id>/tags sees PU01 == k) with 0.2 s + U(0, 0.6) s
between commands, so the phase against the scan is random; then the database's bytes per stored
sample value (sample_chunk blobs, and every table). `--src` runs another checkout's code (e.g.
`git archive HEAD`) with this venv, to measure before and after. The load average is printed
with every figure: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import sqlite3
import statistics
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
from local_site import LocalSite

ROOT = Path(__file__).resolve().parents[1]
LONG_METHOD = "Mark: start\nWait: 3600 s\n"
ANALOG = ("FT01", "PT01", "UV01", "CT01")
"""The chromatography example's analog readings."""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CountingProxy:
    """Loopback TCP proxy that counts the bytes passing each way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = 0  # engine -> aggregator
        self.down = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, up_writer, "up"),
                self._pipe(up_reader, writer, "down"),
                return_exceptions=True,
            )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, way: str
    ) -> None:
        try:
            while data := await reader.read(65536):
                setattr(self, way, getattr(self, way) + len(data))
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def api(
    http: aiohttp.ClientSession, setup: LocalSite, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {setup.session}"} if setup.session else {}
    async with http.request(method, setup.base + path, json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def wait_online(
    http: aiohttp.ClientSession, setup: LocalSite, started: float
) -> tuple[str, float]:
    while True:
        _, units = await api(http, setup, "GET", "/api/units")
        online = [u for u in units if u.get("online")]
        if online:
            return online[0]["id"], time.monotonic() - started
        await asyncio.sleep(0.01)


class Watcher:
    """A /ws client on unit/<id>/tags; remembers when each PU01 value was first seen."""

    def __init__(self) -> None:
        self.seen: dict[float, float] = {}
        self.changed = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, setup: LocalSite, unit: str) -> None:
        url = setup.base.replace("http", "ws") + "/ws"
        headers = {"Authorization": f"Bearer {setup.session}"}
        topic = f"unit/{unit}/tags"
        async with http.ws_connect(url, headers=headers, max_msg_size=0) as ws:
            await ws.send_json({"action": "subscribe", "topic": topic})
            async for message in ws:
                data = json.loads(message.data)
                if data.get("type") == "ping":
                    await ws.send_json({"action": "pong"})
                    continue
                if data.get("topic") != topic:
                    continue
                self.ready.set()
                now = time.monotonic()
                for tag in data.get("data") or []:
                    if tag.get("name") == "PU01" and isinstance(tag.get("value"), int | float):
                        self.seen.setdefault(float(tag["value"]), now)
                self.changed.set()


async def command_rtt(
    http: aiohttp.ClientSession, setup: LocalSite, unit: str, reps: int
) -> dict[str, Any]:
    watcher = Watcher()
    task = asyncio.create_task(watcher.run(http, setup, unit))
    await asyncio.wait_for(watcher.ready.wait(), 15)
    path = f"/api/units/{urllib.parse.quote(unit, safe='')}/inject"
    rtts: list[float] = []
    load0 = load()
    for k in range(reps):
        value = float(11 + k % 80)
        watcher.seen.pop(value, None)
        sent = time.monotonic()
        status, body = await api(http, setup, "POST", path, {"pcode": f"PU01: {value:g} %"})
        if status != 200:
            raise RuntimeError(f"inject refused: {status} {body}")
        while value not in watcher.seen:
            watcher.changed.clear()
            await asyncio.wait_for(watcher.changed.wait(), 10)
        rtts.append(watcher.seen[value] - sent)
        await asyncio.sleep(0.2 + random.uniform(0, 0.6))
    task.cancel()
    return {
        "command_rtt_ms_p50": round(1000 * statistics.median(rtts), 1),
        "command_rtt_ms_p95": round(1000 * pct(rtts, 0.95), 1),
        "command_rtt_ms_max": round(1000 * max(rtts), 1),
        "command_rtt_n": len(rtts),
        "load_average_rtt": [load0, load()],
    }


def storage(db: Path) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        blob, values, chunks = con.execute(
            "select coalesce(sum(length(data)), 0), coalesce(sum(count), 0), count(*) "
            "from sample_chunk"
        ).fetchone()
        analog = con.execute(
            "select coalesce(sum(length(c.data)), 0), coalesce(sum(c.count), 0) from sample_chunk c "
            "join tag on tag.id = c.tag_id where tag.name in (?, ?, ?, ?)",
            ANALOG,
        ).fetchone()
        tables: dict[str, int] = {}
        try:
            for name, size in con.execute("select name, sum(pgsize) from dbstat group by name"):
                tables[name] = size
        except sqlite3.OperationalError:
            pass
        pages = con.execute("pragma page_count").fetchone()[0]
        page_size = con.execute("pragma page_size").fetchone()[0]
    finally:
        con.close()
    return {
        "chunk_values": values,
        "chunks": chunks,
        "chunk_blob_bytes_per_value": round(blob / values, 3) if values else None,
        "analog_chunk_bytes_per_value": round(analog[0] / analog[1], 3) if analog[1] else None,
        "db_bytes": pages * page_size,
        "largest_tables_bytes": dict(sorted(tables.items(), key=lambda kv: -kv[1])[:8]),
    }


async def measure(args: argparse.Namespace, setup: LocalSite) -> dict[str, Any]:
    setup.serve()
    proxy = CountingProxy(setup.port)
    await proxy.start()
    method = setup.tmp / "long.pcode"
    method.write_text(LONG_METHOD if args.method is None else Path(args.method).read_text())
    result: dict[str, Any] = {"src": str(setup.src)}
    async with aiohttp.ClientSession() as http:
        await setup.login(http)
        started = time.monotonic()
        engine = setup.engine(f"ws://127.0.0.1:{proxy.port}", method, profile=args.profile)
        unit, online = await wait_online(http, setup, started)
        result["start_to_online_s"] = round(online, 3)
        status, body = await api(
            http,
            setup,
            "POST",
            f"/api/units/{urllib.parse.quote(unit, safe='')}/control",
            {"action": "Start"},
        )
        if status != 200:
            raise RuntimeError(f"start refused: {status} {body}")
        await asyncio.sleep(3.0)  # past start-up work and the method's first lines
        load0 = load()
        cpu0, up0, down0, t0 = cpu_seconds(engine.pid), proxy.up, proxy.down, time.monotonic()
        await asyncio.sleep(args.seconds)
        elapsed = time.monotonic() - t0
        result.update(
            {
                "window_s": round(elapsed, 1),
                "engine_cpu_percent_of_one_core": round(
                    100 * (cpu_seconds(engine.pid) - cpu0) / elapsed, 2
                ),
                "engine_rss_mb": round(rss_mb(engine.pid), 1),
                "bytes_per_s_engine_to_aggregator": round((proxy.up - up0) / elapsed),
                "bytes_per_s_aggregator_to_engine": round((proxy.down - down0) / elapsed),
                "load_average_window": [load0, load()],
            }
        )
        if args.rtt:
            result.update(await command_rtt(http, setup, unit, args.rtt))
        # Stop the run: the aggregator compacts its samples into chunks at once.
        await api(
            http,
            setup,
            "POST",
            f"/api/units/{urllib.parse.quote(unit, safe='')}/control",
            {"action": "Stop"},
        )
        await asyncio.sleep(3.0)
    result.update(storage(setup.tmp / "agg" / "setpoint.sqlite3"))
    if args.keep_db is not None:
        source = sqlite3.connect(setup.tmp / "agg" / "setpoint.sqlite3")
        with sqlite3.connect(args.keep_db) as target:
            source.backup(target)
        source.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rtt", type=int, default=40, help="command round trips (0: none)")
    parser.add_argument("--src", type=Path, default=ROOT, help="checkout whose code to run")
    parser.add_argument("--method", help="P-code file (default: Mark + a one-hour Wait)")
    parser.add_argument("--profile", type=Path, help="run the engine under cProfile into FILE")
    parser.add_argument("--keep-db", type=Path, help="copy the aggregator's database here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup = LocalSite(Path(tmp), args.src.resolve())
        args.profile = args.profile.resolve() if args.profile else None
        try:
            result = asyncio.run(measure(args, setup))
        finally:
            setup.stop()
    result["host"] = socket.gethostname()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
