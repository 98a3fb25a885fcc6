"""Aggregator CPU at the data-log rate (issue 15 items 1-2): prints one JSON object.

A real `setpoint-aggregator serve` runs as its own process on SQLite; N simulated engines in
this process (bench_ingest.SimEngine) speak raw protocol frames to it over loopback websockets,
as engines do once live updates between samples are sent only while someone watches: one
sampled TagsUpdated per second (10 of 24 tags changed, the chromatography example's size) and a
Heartbeat every 5 s, and they answer the aggregator's Pings. Nobody watches (no /ws client).

For each N: an IDLE window (links open, heartbeats only) and a RUN window (1 frame/s per engine),
the aggregator's CPU seconds (utime + stime from /proc, so independent of the machine's load)
per window, as % of one core and per frame. `--py-spy DIR` records the RUN windows with py-spy
(raw folded stacks, all threads, idle samples dropped) into DIR.

    .venv/bin/python bench/bench_agg_cpu.py [--engines 1,20,100] [--seconds 30] [--py-spy DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ingest import Server, SimEngine, cpu_seconds
from serve_proc import start_serve

import protocol as p
from aggregator.db import create_db_engine, upgrade

TAGS = 24
CHANGED = 10
HEARTBEAT = 5.0


def cpu_ns_seconds(pid: int) -> float:
    """CPU seconds of the process's live threads with nanosecond resolution (schedstat), where
    /proc/PID/stat counts 10 ms ticks: one engine's second costs a few milliseconds. Threads
    that exited in between are not counted (the aggregator's threads live as long as it)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with (
            contextlib.suppress(FileNotFoundError),
            open(f"/proc/{pid}/task/{task}/schedstat") as f,
        ):
            total += int(f.read().split()[0])
    return total / 1e9


async def heartbeats(sim: SimEngine, stop: asyncio.Event) -> None:
    """The engine's Heartbeat every 5 s (rule 10), phase spread by the engine's index."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), (sim.index * 0.37) % HEARTBEAT)
    while not stop.is_set():
        assert sim.ws is not None
        with contextlib.suppress(ConnectionError, RuntimeError):
            await sim.ws.send_bytes(p.encode(p.Heartbeat(seq=sim.seq, time=time.time())))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT)


async def pump(sim: SimEngine, t0: float, seconds: float, sent: list[int]) -> None:
    """One sampled TagsUpdated per second, phase spread across engines."""
    next_at = t0 + (sim.index * 0.618) % 1.0
    while True:
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if time.perf_counter() - t0 >= seconds:
            return
        next_at += 1.0
        await sim.send(sim.sample(CHANGED))
        sent[sim.index] += 1


def spy(pid: int, seconds: float, out: Path | None) -> subprocess.Popen[bytes] | None:
    if out is None:
        return None
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(py_spy),
            *("record", "-p", str(pid), "-r", "997", "-f", "raw", "-d", f"{seconds:g}"),
            *("--threads", "-o", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def measure(
    server: Server, engines: int, seconds: float, spy_dir: Path | None
) -> dict[str, Any]:
    run_tag = uuid.uuid4().hex[:6]
    sims = [SimEngine(i, TAGS, f"bench-{run_tag}-{i}", window=5) for i in range(engines)]
    pid = server.process.pid
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        for sim in sims:
            await sim.connect(http, server)
        for sim in sims:
            await sim.drain()
        beats = [asyncio.create_task(heartbeats(s, stop)) for s in sims]
        await asyncio.sleep(3.0)  # settle: registrations, first compaction
        load_idle = os.getloadavg()
        recorder = spy(pid, seconds, None if spy_dir is None else spy_dir / f"idle-{engines}.txt")
        cpu0, ns0, t0 = cpu_seconds(pid), cpu_ns_seconds(pid), time.perf_counter()
        await asyncio.sleep(seconds)
        if recorder is not None:
            recorder.wait()
        idle_ticks, idle_s = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
        idle_cpu = cpu_ns_seconds(pid) - ns0

        sent = [0] * engines
        load_run = os.getloadavg()
        recorder = spy(pid, seconds, None if spy_dir is None else spy_dir / f"run-{engines}.txt")
        cpu0, ns0, t0 = cpu_seconds(pid), cpu_ns_seconds(pid), time.perf_counter()
        await asyncio.gather(*(pump(s, t0, seconds, sent) for s in sims))
        for sim in sims:
            await sim.drain()
        run_ticks, run_s = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
        run_cpu = cpu_ns_seconds(pid) - ns0
        if recorder is not None:
            recorder.wait()
        stop.set()
        await asyncio.gather(*beats)
        latencies = sorted(lat for s in sims for lat in s.latencies)
        for sim in sims:
            await sim.stop_run()
        for sim in sims:
            await sim.drain()
            await sim.close()
    frames = sum(sent)
    return {
        "engines": engines,
        "idle": {
            "seconds": round(idle_s, 2),
            "cpu_s": round(idle_cpu, 4),
            "cpu_s_proc_stat": round(idle_ticks, 2),
            "pct_of_one_core": round(idle_cpu / idle_s * 100, 3),
            "load_average": load_idle,
        },
        "run": {
            "seconds": round(run_s, 2),
            "frames": frames,
            "cpu_s": round(run_cpu, 4),
            "cpu_s_proc_stat": round(run_ticks, 2),
            "pct_of_one_core": round(run_cpu / run_s * 100, 3),
            "cpu_ms_per_frame": round(run_cpu / frames * 1000, 3) if frames else None,
            "frame_to_ack_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1)
            if latencies
            else None,
            "load_average": load_run,
        },
    }


def start_server(db_url: str, src: Path | None) -> Server:
    """`serve` on `db_url`, from the tree `src` (before/after comparisons) or this checkout."""
    engine = create_db_engine(db_url)
    upgrade(engine)
    engine.dispose()
    cwd = src or Path(__file__).resolve().parents[1]
    process, url = start_serve(
        "--database",
        db_url,
        "--log-level",
        "warning",
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(cwd)},
    )
    return Server(process, url, "", db_url)


async def bench(
    counts: list[int], seconds: float, spy_dir: Path | None, src: Path | None
) -> list[dict[str, Any]]:
    workdir = tempfile.mkdtemp(prefix="setpoint-aggcpu-")
    results = []
    try:
        for n in counts:
            # a fresh aggregator and database per N: no state carried between the points
            db_url = f"sqlite:///{workdir}/bench-{n}.sqlite3"
            server = start_server(db_url, src)
            try:
                results.append(await measure(server, n, seconds, spy_dir))
            finally:
                server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", default="1,20,100", help="comma-separated engine counts")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each window")
    parser.add_argument("--src", type=Path, default=None, help="serve from this tree")
    parser.add_argument("--py-spy", type=Path, default=None, help="record RUN windows here")
    args = parser.parse_args()
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    counts = [int(n) for n in args.engines.split(",")]
    result = {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "load": f"{TAGS} tags, {CHANGED} changed per 1 s sample, heartbeat {HEARTBEAT:g} s",
        "points": asyncio.run(bench(counts, args.seconds, args.py_spy, args.src)),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
