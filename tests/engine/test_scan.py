"""The scan cycle: fixed grid on a fake clock, what it reports, tags and accumulators."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from engine.clock import FakeClock, RealClock
from engine.ports import EngineCommandError
from engine.runner import LatencyRecorder, ScanGrid, run_realtime
from engine.sim.chromatography import ChromatographyModel
from engine.sim.hardware import SimulatedHardware
from protocol.messages import (
    ControlState,
    Method,
    MethodState,
    RunLog,
    RunStarted,
    RunStopped,
    TagsUpdated,
)
from protocol.models import ControlAction

from .conftest import Harness, build_uod

A = ControlAction


class FakeEngine:
    """Records scan times; scan number `slow` takes `slow_for` seconds of the fake clock."""

    scan_interval = 0.1

    def __init__(
        self, clock: FakeClock, stop: asyncio.Event, scans: int, slow: int, slow_for: float
    ):
        self.clock = clock
        self.stop = stop
        self.scans = scans
        self.slow = slow
        self.slow_for = slow_for
        self.times: list[float] = []

    def scan(self, now: float) -> None:
        self.times.append(round(now, 6))
        self.clock.advance(0.01 if len(self.times) != self.slow else self.slow_for)
        if len(self.times) >= self.scans:
            self.stop.set()


async def test_scans_stay_on_the_grid_after_a_late_scan() -> None:
    clock = FakeClock(start=100.0)
    stop = asyncio.Event()
    engine = FakeEngine(clock, stop, scans=8, slow=3, slow_for=0.25)
    recorder = LatencyRecorder()

    async def sleep(delay: float) -> None:
        clock.advance(delay)

    await run_realtime(engine, clock, stop, recorder=recorder, sleep=sleep)
    # Scan 3 (at 100.2) ran until 100.45: 100.3 and 100.4 have come, 100.4 is scanned 50 ms late,
    # and every later scan is back on the grid, not pushed back by the late one.
    assert engine.times == [100.0, 100.1, 100.2, 100.4, 100.5, 100.6, 100.7, 100.8]
    assert recorder.skipped == 1
    assert abs(max(recorder.samples) - 0.05) < 1e-6
    assert recorder.samples[-1] == 0.0


class BrokenScans:
    """Scans on the real clock; scan number `fail_at` raises."""

    scan_interval = 0.01

    def __init__(self, fail_at: int) -> None:
        self.fail_at = fail_at
        self.scans = 0

    def scan(self, now: float) -> None:
        self.scans += 1
        if self.scans == self.fail_at:
            raise RuntimeError("a bug in the scan")


async def test_the_timer_loop_hands_a_scan_error_on_and_stops_when_told() -> None:
    """The production loop (no injected sleep) scans in loop timers; a scan error goes to
    on_scan_error, whose stop request ends the loop."""
    engine, stop, errors = BrokenScans(fail_at=5), asyncio.Event(), []

    def on_error(exc: BaseException) -> None:
        errors.append(str(exc))
        stop.set()

    await asyncio.wait_for(
        run_realtime(engine, RealClock(), stop, on_scan_error=on_error),
        10.0,
    )
    assert engine.scans == 5 and errors == ["a bug in the scan"]


async def test_the_timer_loop_ends_with_the_error_when_even_the_handler_fails() -> None:
    """A timer callback's exception would only be logged by the event loop and the engine would
    live on without scanning; the loop ends with it instead, so the caller shuts down safely."""
    engine = BrokenScans(fail_at=3)

    def on_error(exc: BaseException) -> None:
        raise ValueError("the handler failed too") from exc

    with pytest.raises(ValueError, match="handler failed too"):
        await asyncio.wait_for(
            run_realtime(engine, RealClock(), asyncio.Event(), on_scan_error=on_error),
            10.0,
        )
    assert engine.scans == 3


def test_scan_grid_skips_only_passed_points() -> None:
    grid = ScanGrid(0.0, 0.1)
    grid.done(0.05)
    assert grid.deadline == 0.1
    grid.done(0.15)  # finished late but the next point (0.2) is still ahead
    assert grid.deadline == 0.2
    grid.done(0.55)
    assert round(grid.deadline, 9) == 0.5 and grid.skipped == 2


def test_live_updates_and_samples() -> None:
    h = Harness()
    samples = [m for m in h.sink.of(TagsUpdated) if m["sample"]]
    assert len(samples) == 1
    assert {t.name for t in samples[0]["tags"]} == set(h.engine.store.tags)  # first: all tags
    h.sink.clear()
    h.engine.inject("PU01: 50 %\nInlet: VA01", "alice")
    h.step(9)
    live = [m for m in h.sink.of(TagsUpdated) if not m["sample"]]
    assert len(live) == 9  # one per scan with changes (the flow follows the pump)
    names = {t.name for m in live for t in m["tags"]}
    assert {"PU01", "Inlet", "FT01"} <= names
    assert "UV01" not in names  # never changed: never sent
    h.step()  # the 1 s grid point: only the sample
    last = h.sink.of(TagsUpdated)[-1]
    assert last["sample"] is True
    assert len([m for m in h.sink.of(TagsUpdated) if m["sample"]]) == 1
    sample_names = {t.name for t in last["tags"]}
    assert {"PU01", "Inlet", "FT01", "Clock"} <= sample_names
    assert "UV01" not in sample_names
    for message in h.sink.of(TagsUpdated):
        assert all(t.tick == message["time"] for t in message["tags"] if t.name == "Clock")


def test_an_idle_engine_sends_samples_but_no_live_updates() -> None:
    """Clock changes every scan; alone it must not make a stored live message every 100 ms."""
    h = Harness()
    h.step(10)  # past the first 1 s grid point: the start-up changes are sampled
    h.sink.clear()
    h.step(20)
    updates = h.sink.of(TagsUpdated)
    assert [m["sample"] for m in updates] == [True, True]
    for sample in updates:
        assert [t.name for t in sample["tags"]] == ["Clock"]
        assert sample["tags"][0].value == pytest.approx(sample["time"], abs=1e-3)
    h.engine.inject("PU01: 50 %", "alice")
    h.step()
    live = h.sink.of(TagsUpdated)[-1]
    assert live["sample"] is False
    assert {"PU01", "Clock"} <= {t.name for t in live["tags"]}  # Clock rides along


def test_a_run_holds_every_tag_from_its_start_scan_and_the_grid_stays() -> None:
    """A run shorter than the data-log interval (stopped at once, or paused by an alarm in its
    first second) still keeps the values it started with. The grid does not move with the run:
    units started one after another keep their samples apart."""
    h = Harness()
    origin = h.sink.of(TagsUpdated)[0]["time"]  # the start-up grid: origin + whole seconds
    h.step(4)
    h.sink.clear()
    h.engine.control(ControlAction.START, "alice")
    h.step()
    run_id = h.engine.interpreter.run_id
    first = [m for m in h.sink.of(TagsUpdated) if m["sample"]]
    assert len(first) == 1 and first[0]["run_id"] == run_id
    assert {t.name for t in first[0]["tags"]} == set(h.engine.store.tags)
    assert round(first[0]["time"] - origin, 6) == 0.5, "taken in the start scan"
    h.engine.control(ControlAction.STOP, "alice")
    h.step(25)
    later = [m["time"] for m in h.sink.of(TagsUpdated) if m["sample"]][1:]
    assert [round(t - origin, 6) for t in later] == [1.0, 2.0, 3.0]


def test_data_log_interval_is_configurable() -> None:
    h = Harness(build_uod(lambda u: u.data_log_interval(0.5)))
    h.sink.clear()
    h.step(20)
    assert sum(m["sample"] for m in h.sink.of(TagsUpdated)) == 4


def test_run_messages() -> None:
    h = Harness(method="Mark: a\nWait: 100 s\n")
    h.sink.clear()
    h.engine.control(A.START, "alice")
    h.step(3)
    started = h.sink.of(RunStarted)
    assert len(started) == 1 and started[0]["run_id"] == h.value("Run Id")
    assert started[0]["user"] == "alice"
    controls = h.sink.of(ControlState)
    assert len(controls) == 1 and controls[0]["state"] == "Running"  # not one per scan
    lines = [line for m in h.sink.of(RunLog) for line in m["lines"]]
    assert [line.text for line in lines[:2]] == ["Start", "Mark: a"]
    assert lines[0].user == "alice"
    assert set(lines[1].start_values) == {"FT01", "PU01"}
    assert h.sink.of(MethodState)
    run_id = started[0]["run_id"]
    h.step(10)
    first_sample = next(m for m in h.sink.of(TagsUpdated) if m["sample"])
    assert first_sample["run_id"] == started[0]["run_id"]
    assert {t.name for t in first_sample["tags"]} == set(h.engine.store.tags)  # all, for the run
    h.engine.control(A.RESTART, "bob")
    stopped = h.sink.of(RunStopped)
    assert [s["run_id"] for s in stopped] == [run_id]
    assert stopped[0]["reason"] == "Restart"
    assert stopped[0]["user"] == "bob"
    assert len(h.sink.of(RunStarted)) == 2
    assert h.value("Run Id") not in ("", run_id)
    h.engine.control(A.STOP, "bob")
    h.step()
    assert h.value("Run Id") == ""
    assert h.sink.of(ControlState)[-1]["state"] == "Stopped"


def test_method_edits_check_the_version() -> None:
    h = Harness(method="Mark: a\n")
    version = h.engine.interpreter.method.version
    saved = h.engine.set_method("Mark: a\nMark: b\n", version, None, "alice")
    new = saved.version
    assert new == version + 1
    assert saved.findings == []
    h.step()
    methods = h.sink.of(Method)
    assert methods[-1]["version"] == new
    assert [line["text"] for line in methods[-1]["lines"]] == ["Mark: a", "Mark: b"]
    try:
        h.engine.set_method("Mark: c\n", version, None, "alice")
    except EngineCommandError as exc:
        assert exc.message == f"method version is {new}, not {version}"
        assert exc.data == {"current_version": new}, "machine-readable, no parsing the text"
    else:
        raise AssertionError("stale version accepted")
    warned = h.engine.set_method("Mark: a\nPU01: 500 %\n", new, None, "alice")
    assert warned.version == new + 1
    assert [f.line for f in warned.findings] == [2]


def test_system_tags_and_registration() -> None:
    h = Harness(method="Batch: B7\nIncrement run counter\nMark: m\nWait: 10 s\n")
    h.engine.control(A.START, "alice")
    h.step(20)
    assert h.value("System State") == "Running"
    assert h.value("Batch Name") == "B7"
    assert h.value("Run Counter") == 1
    assert h.value("Mark") == "m"
    assert 1.9 <= h.value("Run Time") <= 2.1
    assert h.value("Clock") == round(h.clock.wall(h.clock.monotonic()), 3)
    assert h.value("Connection Status") == "Connected"
    reg = h.engine.registration()
    assert reg.engine_id == "testpc/Toy"
    names = {t.name for t in reg.uod.tags}
    for tag in (
        "System State",
        "Method Status",
        "Run Id",
        "Run Time",
        "Process Time",
        "Block",
        "Block Time",
        "Scope Time",
        "Base",
        "Run Counter",
        "Mark",
        "Batch Name",
        "Clock",
        "Connection Status",
        "Accumulated Volume",
        "Block Volume",
        "Accumulated CV",
        "Block CV",
    ):
        assert tag in names


def test_simulate_overrides_a_reading_until_stop() -> None:
    h = Harness(method="Simulate: PT01 = 500 kPa\nWait: 10 s\n")
    h.engine.control(A.START, "alice")
    h.step(2)
    tag = h.engine.store["PT01"]
    assert tag.simulated and h.value("PT01") == 5.0  # converted to bar
    assert tag.to_wire().simulated
    h.engine.control(A.STOP, "alice")
    h.step()
    assert not h.engine.store["PT01"].simulated


def _fast_pump() -> ChromatographyModel:
    return ChromatographyModel(pump_tau=0.0)


def test_volume_base_worked_example_12() -> None:
    """pcode.md 13.12: 60 L/h into the totalizer, `Base: L` / `1 End block` -> full ≈ 60 s."""

    uod = build_uod()
    uod = replace(
        uod,
        hardware_factory=lambda clock: SimulatedHardware(
            _fast_pump(), {t: t for t in uod.register_tags}, clock
        ),
    )
    h = Harness(uod, method="Base: L\nBlock: Fill\n    1 End block\nMark: full\n")
    h.engine.inject("Inlet: VA01\nPU01: 50 %", "alice")
    h.step(2)
    assert h.value("FT01") == 60.0
    h.engine.control(A.START, "alice")
    start = h.value("Run Time")
    h.until(lambda: "full" in h.marks(), seconds=70)
    full = next(e for e in h.events if e.kind == "mark" and e.text == "full")
    assert abs(full.run_time - start - 60.0) <= 0.2
    assert h.value("Accumulated CV") > 2.0  # 0.5 L column


def test_block_volume_follows_the_block() -> None:
    h = Harness(method="Base: L\nBlock: A\n    0.5 Mark: half\n    1 End block\nWait: 100 s\n")
    h.engine.inject("Inlet: VA01\nPU01: 50 %", "alice")
    h.run_for(5)
    h.engine.control(A.START, "alice")
    h.until(lambda: "half" in h.marks(), seconds=60)
    assert 0.45 <= h.value("Block Volume") <= 0.55
    assert 0.9 <= h.value("Block CV") <= 1.1


def test_run_log_is_batched_per_scan_and_progress_is_throttled() -> None:
    h = Harness(method="Mark: a\nMark: b\nWait: 5 s\nMark: c\n")
    h.sink.clear()
    h.engine.control(A.START, "alice")
    h.step()
    first = h.sink.of(RunLog)
    # Start, Mark: a, Mark: b, Wait in one message; the run's first sample (this scan) brings
    # the Wait's progress, as every sample does
    assert [line.text for line in first[0]["lines"]][:3] == ["Start", "Mark: a", "Mark: b"]
    assert [[line.text for line in m["lines"]] for m in first[1:]] == [["Wait: 5 s"]]
    h.sink.clear()
    h.run_for(3)  # 30 scans of Wait progress
    progress = [line.progress for m in h.sink.of(RunLog) for line in m["lines"]]
    assert 2 <= len(progress) <= 4  # once per data-log interval, not every scan
    assert progress == sorted(progress) and progress[-1] > 0.3
    h.until(lambda: "c" in h.marks(), seconds=5)
    h.step()
    done = [line for m in h.sink.of(RunLog) for line in m["lines"] if line.text == "Wait: 5 s"]
    assert done[-1].state == "completed" and done[-1].end is not None


def test_calculated_tags_see_the_scan_s_time() -> None:
    """Not the previous scan's Clock (and not 0 on the first scan): with the fake clock, the
    value a calculated tag computes from Clock is this scan's wall time."""
    h = Harness(build_uod(lambda u: u.calculated("Seen Clock", lambda v: v["Clock"], unit="s")))
    first = h.engine.clock.wall(h.clock.monotonic())
    assert h.value("Seen Clock") == round(first, 3)
    for _ in range(3):
        h.clock.advance(h.engine.scan_interval * 7)  # a jump, as in `simulate`
        h.engine.scan(h.clock.monotonic())
        assert h.value("Seen Clock") == round(h.engine.clock.wall(h.clock.monotonic()), 3)
