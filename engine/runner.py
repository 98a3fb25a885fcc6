"""The loops around `Engine.scan`: real time on a fixed grid, and simulated time as fast as allowed.

Both loops call `scan` at grid points start + k * interval. A late scan does not push later ones
back; when the loop falls more than a whole interval behind (a stalled machine), it skips the
missed grid points instead of bursting through them, so the unit is never scanned in a frenzy.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from engine.clock import Clock, FakeClock
from engine.engine import Engine, EngineEvent
from engine.lang.api import SystemState
from protocol.messages import ControlState, ErrorLog, RunLog, RunStarted, RunStopped


@dataclass
class LatencyRecorder:
    """Lateness of each scan behind its grid point, in seconds (for the benchmark)."""

    samples: list[float] = field(default_factory=list)
    skipped: int = 0

    def add(self, lateness: float) -> None:
        self.samples.append(lateness)


class ScanGrid:
    """Which grid point to scan next. Sans-I/O: fed the time, it never reads a clock."""

    def __init__(self, start: float, interval: float) -> None:
        self.start = start
        self.interval = interval
        self.k = 0
        self.skipped = 0

    @property
    def deadline(self) -> float:
        return self.start + self.k * self.interval

    def done(self, now: float) -> None:
        """After a scan finished at `now`: the next grid point still ahead, skipping any that
        have already passed in full (a stalled machine is not made to catch up in a burst)."""
        self.k += 1
        behind = math.floor((now - self.start) / self.interval + 1e-9)
        if behind > self.k:
            self.skipped += behind - self.k
            self.k = behind


class _Scans(Protocol):
    scan_interval: float

    def scan(self, now: float) -> None: ...


async def run_realtime(
    engine: _Scans,
    clock: Clock,
    stop: asyncio.Event,
    *,
    recorder: LatencyRecorder | None = None,
    on_scan_error: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    after_scan: Callable[[float], None] | None = None,
) -> None:
    """Scans on the grid until `stop` is set (seen within one scan interval); sleeps between
    scans, never busy-waits. Tests pass a `sleep` that moves a fake clock.

    `after_scan(now)` runs after each scan in the same event-loop pass: periodic work that can
    ride on the scan's wake-up instead of waking the process on a timer of its own (on the lab
    PC's VM a wake-up costs about as much as a quiet scan). It must not raise.

    The scan guards every phase itself, so an exception escaping it is an engine bug and the
    engine's state is no longer known: `on_scan_error` decides. `setpoint-engine run` requests
    the safe shutdown there (engine/shutdown.py: run stopped, safe values written and
    confirmed, exit code 4); without a callback the loop scans on."""

    if sleep is None:
        await _TimedScans(engine, clock, stop, recorder, on_scan_error, after_scan).run()
        return
    grid = ScanGrid(clock.monotonic(), engine.scan_interval)
    while not stop.is_set():
        target = grid.deadline
        delay = target - clock.monotonic()
        if delay > 0:
            await sleep(delay)
            if stop.is_set():
                break
        _scan_once(engine, clock, grid, target, recorder, on_scan_error)
        if after_scan is not None:
            after_scan(target)
        if delay <= 0:
            await asyncio.sleep(0)  # let other tasks (the link) run even when scans are late


def _scan_once(
    engine: _Scans,
    clock: Clock,
    grid: ScanGrid,
    target: float,
    recorder: LatencyRecorder | None,
    on_scan_error: Callable[[BaseException], None] | None,
) -> None:
    """One scan at grid point `target`, then the grid moves on (skipping passed points)."""
    if recorder is not None:
        recorder.add(clock.monotonic() - target)
    try:
        engine.scan(target)
    except Exception as exc:  # the last line of defence, see run_realtime
        if on_scan_error is not None:
            on_scan_error(exc)
    grid.done(clock.monotonic())
    if recorder is not None:
        recorder.skipped = grid.skipped


class _TimedScans:
    """The real-time loop as a chain of loop timers: the scan runs in the timer's callback.

    Why not `await asyncio.sleep(delay)` per scan: the timer would only complete a future, and
    resuming the coroutine takes a second pass of the event loop (another epoll_wait); at 10
    scans a second that was ~0.06 % of a core on the lab PC's VM for nothing. A timer that is
    already due (a late scan) still runs after the callbacks that are ready, so the link gets
    its turn between late scans as before."""

    def __init__(
        self,
        engine: _Scans,
        clock: Clock,
        stop: asyncio.Event,
        recorder: LatencyRecorder | None,
        on_scan_error: Callable[[BaseException], None] | None,
        after_scan: Callable[[float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.after_scan = after_scan
        self.clock = clock
        self.stop = stop
        self.recorder = recorder
        self.on_scan_error = on_scan_error
        self.grid = ScanGrid(clock.monotonic(), engine.scan_interval)
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None
        self.failed: asyncio.Future[None] = self.loop.create_future()
        """Set when a tick raised: a timer callback's exception would only be logged by the
        loop, and the chain would end with the engine alive but no longer scanning."""

    async def run(self) -> None:
        stopped: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
        self._tick()
        try:
            waiters: set[asyncio.Future[Any]] = {stopped, self.failed}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if self.timer is not None:
                self.timer.cancel()
        if self.failed.done():
            self.failed.result()  # raises what the tick raised: the caller's safe shutdown

    def _tick(self) -> None:
        try:
            self._step()
        except BaseException as exc:
            if not self.failed.done():
                self.failed.set_exception(exc)

    def _step(self) -> None:
        self.timer = None
        if self.stop.is_set():
            return
        target = self.grid.deadline
        delay = target - self.clock.monotonic()
        if delay > 0:  # the loop's clock and ours may differ by a rounding: wait again
            self.timer = self.loop.call_later(delay, self._tick)
            return
        _scan_once(self.engine, self.clock, self.grid, target, self.recorder, self.on_scan_error)
        if self.after_scan is not None:
            self.after_scan(target)
        if not self.stop.is_set():
            delay = self.grid.deadline - self.clock.monotonic()
            self.timer = self.loop.call_later(max(delay, 0.0), self._tick)


async def run_simulated(
    engine: Engine,
    clock: FakeClock,
    *,
    speed: float | None,
    duration: float | None,
    until_stopped: bool = True,
) -> SimulationEnd:
    """Scans on simulated time; `speed` None is as fast as possible.

    Ends when the run reaches Stopped after having started, when it is paused by an error (in a
    simulation nobody is there to unpause), when the method is complete and nothing is left
    armed or running (the unit would stay Running, idle, until a Stop), or when `duration` has
    passed."""
    interval = engine.scan_interval
    start = clock.monotonic()
    loop = asyncio.get_running_loop()
    real_start = loop.time()
    k = 0
    while True:
        now = start + k * interval
        if duration is not None and now - start > duration + 1e-9:
            return SimulationEnd("duration", now - start - interval)
        clock.set(now)
        engine.scan(now)
        if until_stopped and engine.started_once:
            if engine.state is SystemState.STOPPED:
                return SimulationEnd("stopped", now - start)
            if engine.state is SystemState.PAUSED and engine.interpreter.method_status == "Error":
                return SimulationEnd("error", now - start)
            if engine.interpreter.method_complete:
                return SimulationEnd("complete", now - start)
        k += 1
        if speed is not None:
            delay = real_start + (k * interval) / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        elif k % 200 == 0:
            await asyncio.sleep(0)


@dataclass(frozen=True)
class SimulationEnd:
    reason: str  # "stopped", "error" (paused by an error), "complete" or "duration"
    seconds: float  # simulated seconds from the first scan to the last


class JsonEvents:
    """`simulate --json`: one object per line for every run-log event, mark and state change."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out

    def __call__(self, event: EngineEvent) -> None:
        record: dict[str, Any] = {
            "run_time": event.run_time,
            "kind": event.kind,
            "text": event.text,
            "state": event.state,
        }
        if event.detail is not None:
            record["line_state"] = event.detail
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()


class HumanEvents:
    """`simulate` without --json: the same events as readable lines."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out

    def __call__(self, event: EngineEvent) -> None:
        detail = f" ({event.detail})" if event.detail else ""
        self._out.write(f"{event.run_time:9.1f} s  {event.kind:<7} {event.text}{detail}\n")
        self._out.flush()


class ConsoleSink:
    """The standalone `run` sink: one human line per run-log event, state change and log entry."""

    def __init__(self, out: TextIO = sys.stdout, clock_label: Callable[[float], str] | None = None):
        self._out = out
        self._states: dict[str, str] = {}
        self._state: str | None = None
        self._label = clock_label or _clock_label

    def emit(self, kind: type[Any], /, **fields: Any) -> None:
        time = float(fields.get("time", 0.0))
        if kind is RunLog:
            for line in fields["lines"]:
                state = str(line.state.value if hasattr(line.state, "value") else line.state)
                if self._states.get(line.id) == state:
                    continue
                self._states[line.id] = state
                who = f" [{line.user}]" if line.user else ""
                error = f": {line.error}" if line.error else ""
                self._print(time, f"{line.text}{who}  ({state}{error})")
        elif kind is ControlState:
            state = str(fields["state"].value)
            if state != self._state:
                self._state = state
                self._print(time, f"System State: {state}")
        elif kind is ErrorLog:
            for entry in fields["entries"]:
                self._print(time, f"{entry.level.upper()}: {entry.message}")
        elif kind is RunStarted:
            self._states.clear()
            self._print(time, f"run {fields['run_id']} started")
        elif kind is RunStopped:
            self._print(time, f"run {fields['run_id']} stopped ({fields['reason']})")

    def _print(self, time: float, text: str) -> None:
        self._out.write(f"{self._label(time)}  {text}\n")
        self._out.flush()


def _clock_label(wall: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%H:%M:%S.%f")[:-3]
