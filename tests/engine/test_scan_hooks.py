"""Work that rides on the scan loop's wake-ups: `run_realtime(after_scan=...)` and the hardware
advice of `setpoint-engine run`, which used to wake the process on a timer of its own."""

from __future__ import annotations

import asyncio
import io

from engine.cli import HardwareAdvice
from engine.clock import FakeClock, RealClock
from engine.hw.base import ConnectionState
from engine.runner import run_realtime


class CountingScans:
    scan_interval = 0.01

    def __init__(self, stop: asyncio.Event, scans: int) -> None:
        self.stop = stop
        self.scans = scans
        self.times: list[float] = []

    def scan(self, now: float) -> None:
        self.times.append(now)
        if len(self.times) >= self.scans:
            self.stop.set()


async def test_after_scan_runs_after_every_scan_with_its_grid_time() -> None:
    clock = FakeClock(start=10.0)
    stop = asyncio.Event()
    engine = CountingScans(stop, scans=5)
    seen: list[float] = []

    async def sleep(delay: float) -> None:
        clock.advance(delay)

    await run_realtime(engine, clock, stop, sleep=sleep, after_scan=seen.append)
    assert seen == engine.times and len(seen) == 5


async def test_the_timer_loop_runs_after_scan_too() -> None:
    stop = asyncio.Event()
    engine = CountingScans(stop, scans=4)
    seen: list[float] = []
    await asyncio.wait_for(run_realtime(engine, RealClock(), stop, after_scan=seen.append), 10.0)
    assert seen == engine.times


class Part:
    name = "PLC"

    def __init__(self) -> None:
        self.connection_state = ConnectionState.OK


def test_hardware_advice_checks_at_most_once_per_period() -> None:
    part, out = Part(), io.StringIO()
    advice = HardwareAdvice(part, out)  # type: ignore[arg-type]
    checks: list[float] = []
    original = advice.check

    def check() -> None:
        checks.append(now)
        original()

    advice.check = check  # type: ignore[method-assign]
    after_scan = advice.every(0.5)
    for k in range(12):
        now = 100.0 + k * 0.1
        if k == 3:
            part.connection_state = ConnectionState.ERROR
        if k == 8:
            part.connection_state = ConnectionState.OK
        after_scan(now)
    assert [round(t, 1) for t in checks] == [100.0, 100.5, 101.0]
    assert out.getvalue().splitlines() == [
        "setpoint-engine: PLC: cannot connect; the engine keeps retrying",
        "setpoint-engine: PLC: connected",
    ]


def test_a_failing_advice_ends_the_advice_not_the_scan_loop() -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("stderr is gone")

    part = Part()
    part.connection_state = ConnectionState.ERROR
    advice = HardwareAdvice(part, Closed())  # type: ignore[arg-type]
    after_scan = advice.every(0.5)
    after_scan(1.0)  # raises nothing
    part.connection_state = ConnectionState.OK
    after_scan(2.0)  # and checks no more
    assert advice._advised == {0}
