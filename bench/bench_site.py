"""Two aggregator nodes of one site vs one node, on one machine (issue 21 item 7); prints JSON.

Each node is a real `setpoint-aggregator serve --database postgresql+psycopg://... --nats
nats://127.0.0.1:4222 --site <unique> --node a|b` process on a free loopback port, on a
PostgreSQL database this bench creates and drops. N scripted engines (bench/site_engine.py: the
protocol over real websockets, in-memory outbox, the engine's own fail-over and back-off) send
100 tags each at 1 Hz. Phases:

1. one node (PostgreSQL, no NATS), engines and a /ws client on it: aggregator CPU (CPU seconds
   per wall second, from /proc) and browser freshness (a tags change's arrival at the /ws
   client minus the scan time it carries);
2. two nodes (NATS), every engine on node A (`--aggregator A,B`), the /ws client on node B (the
   node that does NOT hold the engines): CPU of each node, freshness through NATS;
3. failover, --kills times: SIGKILL the node holding the engines, time until every engine is
   registered (online) on the other node; restart the killed node (same port), wait until it
   is ready and every engine has resent its backlog, and kill the holder again.

Processes: only the nodes it starts, ended by PID. Bounded: --max-seconds for the whole run.

    .venv/bin/python bench/bench_site.py [--engines 100] [--tags 100] [--seconds 60] \
        [--kills 10] [--watch 10] [--max-seconds 1800]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this tree first

from loopback import free_port
from serve_proc import MODULE
from site_engine import SiteEngine, freshness_of, produce

from aggregator.audit import KEY_FILE, new_key_file
from aggregator.db import create_db_engine, upgrade
from aggregator.security import hash_password, new_token, token_hash
from aggregator.store import Storage

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NATS_URL = "nats://127.0.0.1:4222"
ROOT = Path(__file__).resolve().parents[1]
ADMIN = ("bench-admin", "bench-site-password-1")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


@dataclass
class Node:
    """One `serve` process on a fixed port (a restart keeps its address). Not
    serve_proc.start_serve, which blocks until the `listening on` line: a node is (re)started
    inside the event loop the engines and the /ws client run in, so `ready` polls instead."""

    name: str
    data_dir: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.data_dir / "aggregator.log", "ab")  # noqa: SIM115 - handed to the child
        argv = [*MODULE, "--port", str(self.port), "--data-dir", str(self.data_dir)]
        self.proc = subprocess.Popen(
            [*argv, "--log-level", "warning", *self.args], stdout=log, stderr=log, cwd=ROOT
        )
        log.close()

    async def ready(self, http: aiohttp.ClientSession, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = (self.data_dir / "aggregator.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"node {self.name} exited: {tail}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(
                    f"{self.http}/api/ready", timeout=aiohttp.ClientTimeout(total=2)
                ) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"node {self.name} not ready within {timeout:g} s")
            await asyncio.sleep(0.1)

    def cpu(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class Browser:
    """One /ws client watching the tags of some units; records freshness of every change."""

    def __init__(self, http: aiohttp.ClientSession, node: Node, token: str) -> None:
        self.http, self.node, self.token = http, node, token
        self.samples: list[float] = []
        self.frames = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self, units: list[str]) -> None:
        ws = await self.http.ws_connect(
            f"{self.node.ws}/ws", headers={"Authorization": f"Bearer {self.token}"}
        )
        for unit in units:
            await ws.send_json({"action": "subscribe", "topic": f"unit/{unit}/tags"})
        self._task = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                received = time.time()
                if '"ping"' in msg.data[:40]:
                    await ws.send_json({"action": "pong"})
                    continue
                self.frames += 1
                freshness_of(msg.data, received, self.samples)
        finally:
            await ws.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def progress(text: str) -> None:
    """One line on stderr per step (stdout is the JSON)."""
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


async def until(predicate: Any, timeout: float, what: str) -> None:
    progress(f"waiting for {what}")
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def stored(engines: list[SiteEngine], timeout: float, what: str) -> None:
    """Until every engine is online and has had acknowledged everything it had produced when
    the wait began (new frames keep coming at 1 Hz; their acks may lag under load)."""
    marks = [e.seq for e in engines]

    def done() -> bool:
        return all(e.online and e.acked >= m for e, m in zip(engines, marks, strict=True))

    try:
        await until(done, timeout, what)
    except RuntimeError as exc:
        online = sum(e.online for e in engines)
        behind = max((m - e.acked for e, m in zip(engines, marks, strict=True)), default=0)
        errors = sorted({err for e in engines for err in e.errors})[:5]
        raise RuntimeError(
            f"{exc} ({online}/{len(engines)} online, most behind {behind}; errors: {errors})"
        ) from None


@dataclass
class Site:
    """The database, the nodes' data directories, the engines and the admin's bearer token."""

    db_url: str
    workdir: Path
    engines: list[SiteEngine]
    site: str
    nodes: list[Node] = field(default_factory=list)

    def node(self, name: str, *extra: str) -> Node:
        data_dir = self.workdir / name
        data_dir.mkdir(exist_ok=True)
        shutil.copy2(self.workdir / KEY_FILE, data_dir / KEY_FILE)  # one audit key per site
        node = Node(name, data_dir, ["--database", self.db_url, *extra])
        self.nodes.append(node)
        return node

    def cluster_node(self, name: str) -> Node:
        return self.node(name, "--nats", NATS_URL, "--site", self.site, "--node", name)


def prepare(db_url: str, workdir: Path, count: int, tags: int) -> Site:
    """Schema, an admin, one engine token per engine (a token serves one engine id)."""
    db = create_db_engine(db_url)
    upgrade(db)
    storage = Storage(db)
    storage.add_user(ADMIN[0], "admin", hash_password(ADMIN[1]))
    tag = uuid.uuid4().hex[:6]
    engines = []
    for i in range(count):
        engine_id = f"bench-site-{i:03d}/Bench"
        token = new_token()
        storage.create_engine_token(f"bench-{tag}-{i}", token_hash(token), engine_id)
        engines.append(SiteEngine(engine_id, token, [], f"site-{tag}-{i}", tags=tags))
    db.dispose()
    new_key_file(workdir / KEY_FILE)
    return Site(db_url, workdir, engines, "bench" + uuid.uuid4().hex[:10])


async def login(http: aiohttp.ClientSession, node: Node) -> str:
    body = {"username": ADMIN[0], "password": ADMIN[1]}
    async with http.post(f"{node.http}/api/auth/login", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return str((await resp.json())["token"])


async def connect(http: aiohttp.ClientSession, site: Site, urls: list[str]) -> None:
    for engine in site.engines:
        engine.urls, engine.url_index = urls, 0
        engine.start(http)
    await stored(site.engines, 180, "every engine online with its backlog stored")


async def measure(
    nodes: list[Node], browser: Browser, seconds: float, engines: list[SiteEngine]
) -> dict[str, Any]:
    """CPU of each node and the browser's freshness over `seconds` of steady state."""
    progress(f"measuring {seconds:g} s on {', '.join(n.name for n in nodes)}")
    await asyncio.sleep(2.0)  # warm-up: the first changes after subscribing
    browser.samples.clear()
    cpu0 = [n.cpu() for n in nodes]
    own0, t0 = time.process_time(), time.monotonic()
    seq0 = sum(e.seq for e in engines)
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    result: dict[str, Any] = {
        "seconds": round(wall, 1),
        "messages_per_s": round((sum(e.seq for e in engines) - seq0) / wall, 1),
        "cpu_s_per_s": {
            n.name: round((n.cpu() - c) / wall, 3) for n, c in zip(nodes, cpu0, strict=True)
        },
        "bench_process_cpu_s_per_s": round((time.process_time() - own0) / wall, 3),
        "freshness_ms": {
            "frames": len(browser.samples),
            "p50": ms(pct(browser.samples, 0.5)),
            "p99": ms(pct(browser.samples, 0.99)),
            "max": ms(max(browser.samples, default=None)),
        },
        "frames_unacked_at_end": sum(e.seq - e.acked for e in engines),
    }
    result["cpu_s_per_s_total"] = round(sum(result["cpu_s_per_s"].values()), 3)
    return result


async def phase_single(
    http: aiohttp.ClientSession, site: Site, seconds: float, watch: list[str]
) -> dict[str, Any]:
    node = site.node("single")
    node.start()
    await node.ready(http)
    await connect(http, site, [node.ws])
    browser = Browser(http, node, await login(http, node))
    await browser.start(watch)
    try:
        return {
            "browser_on": "the holding node",
            **await measure([node], browser, seconds, site.engines),
        }
    finally:
        await browser.stop()
        await asyncio.gather(*(engine.stop() for engine in site.engines))
        node.stop()


async def fail_over_once(http: aiohttp.ClientSession, site: Site, timeout: float) -> dict[str, Any]:
    """SIGKILL the node holding every engine; time until all are registered on the other."""
    counts = {n.ws: 0 for n in site.nodes[-2:]}
    for engine in site.engines:
        counts[engine.registered_url] = counts.get(engine.registered_url, 0) + 1
    holder = max(site.nodes[-2:], key=lambda n: counts[n.ws])
    other = next(n for n in site.nodes[-2:] if n is not holder)
    progress(f"SIGKILL node {holder.name}")
    t0 = time.monotonic()
    holder.kill()
    try:
        await until(
            lambda: all(e.online and e.registered_url == other.ws for e in site.engines),
            timeout,
            f"every engine online on node {other.name}",
        )
    except RuntimeError as exc:
        late = [e for e in site.engines if not (e.online and e.registered_url == other.ws)]
        attempts = sorted(e.attempts_since_online for e in late)
        errors = sorted({err for e in late for err in e.errors})[:5]
        raise RuntimeError(
            f"{exc}: {len(late)} not online there; failed attempts since their last "
            f"Registered {attempts[:3]}..{attempts[-3:]}; errors {errors}"
        ) from None
    times = [e.registered_at - t0 for e in site.engines if e.registered_at > t0]
    holder.start()
    await holder.ready(http)
    await asyncio.sleep(3.0)  # the restarted node hears the site (1 s node heartbeats)
    await stored(site.engines, 180, "every engine's backlog stored")
    return {
        "killed": holder.name,
        "engines_moved": len(times),
        "all_online_s": round(max(times), 3),
        "engine_p50_s": round(statistics.median(times), 3),
    }


async def phase_site(
    http: aiohttp.ClientSession,
    site: Site,
    seconds: float,
    watch: list[str],
    kills: int,
    out: dict[str, Any],
) -> None:
    """Fills `out` as it goes: the steady window first, then each kill, so that a failed kill
    still leaves every figure measured before it."""
    a, b = site.cluster_node("a"), site.cluster_node("b")
    a.start()
    await a.ready(http)
    b.start()
    await b.ready(http)
    await connect(http, site, [a.ws, b.ws])
    on_a = sum(e.registered_url == a.ws for e in site.engines)  # a slow first try moves one on
    browser = Browser(http, b, await login(http, b))
    await browser.start(watch)
    await until(lambda: browser.frames > 0, 30, "the first change on node B")
    out["browser_on"] = "node b, which does not hold the engines"
    out["engines_on_a"] = on_a
    out.update(await measure([a, b], browser, seconds, site.engines))
    await browser.stop()
    failovers: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"kills": 0, "each": failovers}
    out["failover"] = summary
    for _ in range(kills):
        failovers.append(await fail_over_once(http, site, 120.0))
        worst = [f["all_online_s"] for f in failovers]
        summary["kills"] = len(failovers)
        summary["all_online_p50_s"] = round(statistics.median(worst), 3)
        summary["all_online_max_s"] = max(worst)


async def bench(args: argparse.Namespace, db_url: str, workdir: Path, out: dict[str, Any]) -> None:
    """Fills `out` phase by phase, so that a failure still reports what was measured."""
    site = prepare(db_url, workdir, args.engines, args.tags)
    watch = [e.engine_id for e in site.engines[: args.watch]]
    stop = asyncio.Event()
    # no pool limit: 100 engine websockets would take all 100 default slots (the login waits)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        for engine in site.engines:
            await engine.start_run()
        producer = asyncio.create_task(produce(site.engines, args.rate, stop))
        try:
            out["one_node"] = await phase_single(http, site, args.seconds, watch)
            out["two_nodes"] = {}
            await phase_site(http, site, args.seconds, watch, args.kills, out["two_nodes"])
            for engine in site.engines:
                await engine.stop_run()
            marks = [e.seq for e in site.engines]  # each run's RunStopped
            with contextlib.suppress(RuntimeError):
                await stored(site.engines, 60, "the runs' ends stored")
            out["not_stored_at_end"] = [
                {"engine": e.engine_id, "online": e.online, "behind": m - e.acked}
                for e, m in zip(site.engines, marks, strict=True)
                if not (e.online and e.acked >= m)
            ]
        finally:
            stop.set()
            await producer
            await asyncio.gather(*(engine.stop() for engine in site.engines))
            for node in site.nodes:  # only the processes this bench started, by PID
                node.kill()


def create_database() -> tuple[str, Any]:
    name = "setpoint_bench_site_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


async def bounded(
    args: argparse.Namespace, db_url: str, workdir: Path, out: dict[str, Any]
) -> None:
    async with asyncio.timeout(args.max_seconds):
        await bench(args, db_url, workdir, out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", type=int, default=100, help="scripted engines (default 100)")
    parser.add_argument("--tags", type=int, default=100, help="tags per engine (default 100)")
    parser.add_argument("--rate", type=float, default=1.0, help="samples/s per engine (default 1)")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady-state window per phase")
    parser.add_argument("--kills", type=int, default=10, help="failovers to time (default 10)")
    parser.add_argument("--watch", type=int, default=10, help="units the /ws client subscribes to")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="bound on the whole run")
    parser.add_argument(
        "--keep-logs", type=Path, help="copy the nodes' logs into this directory at the end"
    )
    args = parser.parse_args()
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()},
        "config": vars(args),
    }
    workdir = Path(tempfile.mkdtemp(prefix="setpoint-bench-site-"))
    db_url, drop = create_database()
    try:
        asyncio.run(bounded(args, db_url, workdir, out))
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        drop()
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*/aggregator.log"):
                shutil.copy2(log, args.keep_logs / f"{log.parent.name}.log")
        shutil.rmtree(workdir, ignore_errors=True)
        out["machine"]["load_average_end"] = os.getloadavg()
        print(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
