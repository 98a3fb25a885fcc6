"""Engine process costs (issue 15 item 3): start to online, CPU and memory while running a method.

    .venv/bin/python bench/bench_engine_run.py [--seconds 60] [--starts 7] [--watch] [--src DIR]
        [--method FILE] [--profile FILE] [--no-run] [--no-compile]

Starts a real `setpoint-aggregator serve`, then:

1. start-up, `--starts` times: `setpoint-engine run --uod uod_examples/chromatography.py
   --method ... --aggregator ...` is started and timed from just before the process is created
   until a /ws client subscribed to `units` is told the unit is online (the aggregator accepted
   its RegisterEngine); then SIGTERM, and the next start waits until the unit is offline. The
   starts share one data directory (an engine restart on the lab PC) and one user cache
   directory ($XDG_CACHE_HOME, empty before the first start): `first` is a cold start, `warm`
   the median of the others. `cpu_s_to_online`: the engine's CPU seconds (its own and the
   UOD probe child's) when it was online: what start-up costs whatever the machine's load.
2. running: one more engine with `--start` runs the method (100 ms scans, link connected); after
   3 s, for `--seconds`, its CPU (utime+stime of every thread from /proc, CPU seconds per wall
   second, so a busy machine slows it but does not inflate it), per thread, and its resident
   memory (VmRSS at the end, VmHWM the peak); `engine_cpu_percent_schedstat` is the same
   window from the scheduler's nanosecond clock. `--watch` adds a /ws client on the unit's tags
   during the window (a browser looking at it).

`--src` runs another checkout's code (`git archive HEAD | tar -x -C DIR`) with this venv, for
before/after. The tree's packages are byte-compiled first, as an installed engine's are
(`--no-compile`: not, which is how the figures before 2026-12-05 were taken: this shell sets
PYTHONDONTWRITEBYTECODE). Prints one JSON object; the load average is given with each figure
(the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from local_site import LocalSite

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, task: int | None = None) -> float:
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_seconds(pid: int) -> float:
    """Time on a CPU of every thread of the process, from the scheduler's own nanosecond
    clock (/proc/<pid>/task/<tid>/schedstat): the /proc/stat ticks are 1/100 s, so a 30 s
    window of an engine at 0.5 % holds only 15 of them and two runs differ by a tick."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended between the listing and the read
    return total / 1e9


def cpu_with_children(pid: int) -> float:
    """utime + stime of the process and of its children it has waited for (the UOD probe)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def threads(pid: int) -> dict[int, tuple[str, float]]:
    """Each thread's name and CPU seconds so far."""
    found: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            found[int(task.name)] = (name, cpu_seconds(pid, int(task.name)))
        except (OSError, IndexError):
            continue
    return found


def memory_mb(pid: int) -> dict[str, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            values[key] = round(int(line.split()[1]) / 1024, 1)
    return values


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Units:
    """A /ws client on `units`: when each unit was last told online or offline."""

    def __init__(self) -> None:
        self.online: dict[str, bool] = {}
        self.changed = asyncio.Event()
        self.ready = asyncio.Event()

    async def run(self, http: aiohttp.ClientSession, site: LocalSite) -> None:
        url = site.base.replace("http", "ws") + "/ws"
        headers = {"Authorization": f"Bearer {site.session}"}
        async with http.ws_connect(url, headers=headers, max_msg_size=0) as ws:
            await ws.send_json({"action": "subscribe", "topic": "units"})
            self.ready.set()
            async for message in ws:
                data = json.loads(message.data)
                if data.get("type") == "ping":
                    await ws.send_json({"action": "pong"})
                    continue
                if data.get("topic") != "units":
                    continue
                items = data.get("data")
                for unit in items if isinstance(items, list) else [items]:
                    if isinstance(unit, dict) and "id" in unit and "online" in unit:
                        self.online[unit["id"]] = bool(unit["online"])
                self.changed.set()

    async def wait(self, online: bool, timeout: float = 60.0) -> str:
        async def until() -> str:
            while True:
                for unit, state in self.online.items():
                    if state is online:
                        return unit
                if not online and not self.online:
                    return ""
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(until(), timeout)


async def watch_tags(
    http: aiohttp.ClientSession, site: LocalSite, unit: str, seen: list[int]
) -> None:
    url = site.base.replace("http", "ws") + "/ws"
    headers = {"Authorization": f"Bearer {site.session}"}
    async with http.ws_connect(url, headers=headers, max_msg_size=0) as ws:
        await ws.send_json({"action": "subscribe", "topic": f"unit/{unit}/tags"})
        async for message in ws:
            data = json.loads(message.data)
            if data.get("type") == "ping":
                await ws.send_json({"action": "pong"})
            elif data.get("topic") == f"unit/{unit}/tags":
                seen[0] += 1


async def startups(site: LocalSite, units: Units, method: Path, count: int) -> dict[str, Any]:
    times: list[float] = []
    cpus: list[float] = []
    load0 = load()
    for _ in range(count):
        started = time.monotonic()
        process = site.engine(site.base.replace("http", "ws"), method)
        await units.wait(True)
        times.append(time.monotonic() - started)
        cpus.append(cpu_with_children(process.pid))
        process.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, process.wait, 30)
        await units.wait(False)
    warm = times[1:] or times
    return {
        "start_to_online_s_first": round(times[0], 3),
        "start_to_online_s_warm_median": round(statistics.median(warm), 3),
        "start_to_online_s_all": [round(t, 3) for t in times],
        "cpu_s_to_online_median": round(statistics.median(cpus), 3),
        "cpu_s_to_online_all": [round(c, 2) for c in cpus],
        "load_average_starts": [load0, load()],
    }


async def running(
    http: aiohttp.ClientSession, site: LocalSite, units: Units, args: argparse.Namespace
) -> dict[str, Any]:
    engine = site.engine(
        site.base.replace("http", "ws"), args.method, start=True, profile=args.profile
    )
    unit = await units.wait(True)
    seen = [0]
    watcher = asyncio.create_task(watch_tags(http, site, unit, seen)) if args.watch else None
    await asyncio.sleep(3.0)  # past start-up work and the method's first lines
    load0 = load()
    before, t0 = threads(engine.pid), time.monotonic()
    cpu0, ran0 = cpu_seconds(engine.pid), run_seconds(engine.pid)
    await asyncio.sleep(args.seconds)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(engine.pid) - cpu0
    ran = run_seconds(engine.pid) - ran0
    after = threads(engine.pid)
    per_thread: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        used = seconds - before.get(tid, (name, 0.0))[1]
        key = "main" if tid == engine.pid else name
        per_thread[key] = round(per_thread.get(key, 0.0) + 100 * used / elapsed, 3)
    result = {
        "window_s": round(elapsed, 1),
        "watching_client": args.watch,
        "tag_pushes_seen_per_s": round(seen[0] / elapsed, 1) if args.watch else None,
        "engine_cpu_percent_of_one_core": round(100 * cpu / elapsed, 3),
        "engine_cpu_percent_schedstat": round(100 * ran / elapsed, 3),
        "engine_cpu_percent_by_thread": per_thread,
        "engine_memory_mb": memory_mb(engine.pid),
        "load_average_window": [load0, load()],
    }
    if watcher is not None:
        watcher.cancel()
    engine.send_signal(signal.SIGTERM)
    await asyncio.get_running_loop().run_in_executor(None, engine.wait, 30)
    return result


async def measure(args: argparse.Namespace, site: LocalSite) -> dict[str, Any]:
    site.engine_token = site.new_engine_token()  # once, outside the timed starts
    site.serve()
    result: dict[str, Any] = {"src": str(site.src)}
    async with aiohttp.ClientSession() as http:
        await site.login(http)
        units = Units()
        listener = asyncio.create_task(units.run(http, site))
        await asyncio.wait_for(units.ready.wait(), 15)
        if args.starts:
            result.update(await startups(site, units, args.method, args.starts))
        if not args.no_run:
            result.update(await running(http, site, units, args))
        listener.cancel()
    return result


def precompile(src: Path) -> None:
    """Byte-compile the tree's packages as `pip install` does for an installed engine.

    This shell sets PYTHONDONTWRITEBYTECODE, so without this every start compiled the ~80
    engine and protocol modules from source (~0.09 s of CPU that a lab PC never pays). The
    .pyc files go to the tree's __pycache__ folders (ignored by git); --no-compile skips it."""
    packages = [str(src / name) for name in ("engine", "protocol", "aggregator")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="CPU window while running")
    parser.add_argument("--starts", type=int, default=7, help="timed starts (0: none)")
    parser.add_argument("--watch", action="store_true", help="a /ws client on the unit's tags")
    parser.add_argument("--src", type=Path, default=ROOT, help="checkout whose code to run")
    parser.add_argument("--method", type=Path, help="default: the example's chromatography.pcode")
    parser.add_argument("--profile", type=Path, help="run the engine under cProfile into FILE")
    parser.add_argument("--no-run", action="store_true", help="start-up only")
    parser.add_argument(
        "--no-compile", action="store_true", help="no .pyc for the tree (PYTHONDONTWRITEBYTECODE)"
    )
    args = parser.parse_args()
    args.src = args.src.resolve()
    args.method = (args.method or args.src / "uod_examples/chromatography.pcode").resolve()
    args.profile = args.profile.resolve() if args.profile else None
    if not args.no_compile:
        precompile(args.src)
    with tempfile.TemporaryDirectory() as tmp:
        site = LocalSite(Path(tmp), args.src, {"XDG_CACHE_HOME": str(Path(tmp) / "cache")})
        try:
            result = asyncio.run(measure(args, site))
        finally:
            site.stop()
    result["bytecode_precompiled"] = not args.no_compile
    result["host"] = socket.gethostname()
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
