"""Engine benchmarks: the cost of one scan, and the lateness of the real-time scan loop.

    .venv/bin/python bench/bench_engine.py [--seconds 60] [--skip-lateness]

Prints one JSON object. Scan cost is measured on a fake clock with a unit of N simulated tags that
all change every scan (the worst case for reporting), running a method. Lateness is measured on
the real clock with the chromatography example running its method, once idle and once with a
busy-loop subprocess occupying a core (started and stopped by PID).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.clock import FakeClock, RealClock  # noqa: E402
from engine.commands import CommandContext  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.runner import LatencyRecorder, run_realtime  # noqa: E402
from engine.uod import Number, Uod, UodBuilder, load_uod  # noqa: E402
from protocol.models import ControlAction  # noqa: E402


@dataclass
class ManySignals:
    """N outputs that all move every step, and one input (a gain)."""

    n: int
    t: float = 0.0
    gain: float = 1.0
    values: dict[str, float] = field(default_factory=dict)

    def set_input(self, name: str, value: float | str) -> None:
        self.gain = float(value)

    def step(self, dt: float) -> None:
        self.t += dt

    def outputs(self) -> Mapping[str, float | str]:
        t, g = self.t, self.gain
        return {f"S{i:04d}": round(g * math.sin(t + i), 6) for i in range(self.n)}


def _gain(cmd: CommandContext, value: float) -> None:
    cmd.set("Gain", value)


def many_tag_uod(n: int) -> Uod:
    uod = UodBuilder(f"Bench {n}")
    registers = {f"S{i:04d}": f"S{i:04d}" for i in range(n)}
    registers["Gain"] = "Gain"
    uod.simulated(lambda: ManySignals(n), registers=registers)
    uod.entry("Gain", safe_value=1.0)
    for i in range(n):
        uod.reading(f"S{i:04d}", unit="V")
    uod.command("Gain", _gain, argument=Number([]))
    uod.process_value("S0000")
    return uod.build(filename=f"<bench {n}>")


def scan_cost(n: int, scans: int) -> dict[str, float]:
    clock = FakeClock()
    method = "Watch: S0000 > 2 V\n    Mark: never\nWait: 10000 s\n"
    engine = Engine(many_tag_uod(n - 15), clock=clock, method=method)  # + 14 system, Gain
    assert len(engine.store.tags) == n, len(engine.store.tags)
    engine.scan(clock.now)
    engine.control(ControlAction.START, "bench")
    for _ in range(20):  # warm up
        clock.advance(0.1)
        engine.scan(clock.now)
    times = []
    for _ in range(scans):
        clock.advance(0.1)
        start = time.perf_counter()
        engine.scan(clock.now)
        times.append(time.perf_counter() - start)
    times.sort()
    return {
        "tags": n,
        "scans": scans,
        "mean_ms": round(statistics.fmean(times) * 1e3, 4),
        "p50_ms": round(times[len(times) // 2] * 1e3, 4),
        "p99_ms": round(times[int(len(times) * 0.99)] * 1e3, 4),
        "cpu_share_at_100ms": round(statistics.fmean(times) / 0.1, 5),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _lateness(seconds: float) -> dict[str, Any]:
    uod = load_uod(ROOT / "uod_examples" / "chromatography.py")
    method = (ROOT / "uod_examples" / "chromatography.pcode").read_text()
    clock = RealClock()
    engine = Engine(uod, clock=clock, method=method)
    await engine.start()
    engine.scan(clock.monotonic())
    engine.control(ControlAction.START, "bench")
    stop = asyncio.Event()
    recorder = LatencyRecorder()
    loop = asyncio.get_running_loop()
    loop.call_later(seconds, stop.set)
    cpu0 = time.process_time()
    await run_realtime(engine, clock, stop, recorder=recorder)
    cpu = time.process_time() - cpu0
    await engine.stop()
    ms = [s * 1e3 for s in recorder.samples]
    return {
        "seconds": seconds,
        "scans": len(ms),
        "skipped": recorder.skipped,
        "p50_ms": round(_percentile(ms, 0.50), 3),
        "p99_ms": round(_percentile(ms, 0.99), 3),
        "max_ms": round(max(ms), 3),
        "engine_cpu_percent_of_one_core": round(100 * cpu / seconds, 2),
    }


def lateness(seconds: float, busy: bool) -> dict[str, Any]:
    hog: subprocess.Popen[bytes] | None = None
    if busy:
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        result = asyncio.run(_lateness(seconds))
    finally:
        if hog is not None:
            os.kill(hog.pid, signal.SIGKILL)
            hog.wait()
    result["other_core_busy"] = busy
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0, help="per lateness case")
    parser.add_argument("--scans", type=int, default=2000, help="scans per scan-cost case")
    parser.add_argument("--skip-lateness", action="store_true", help="only the scan cost")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
        "scan_cost": [scan_cost(100, args.scans), scan_cost(1000, max(200, args.scans // 5))],
    }
    if not args.skip_lateness:
        result["lateness"] = [lateness(args.seconds, False), lateness(args.seconds, True)]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
