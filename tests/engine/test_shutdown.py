"""The safe shutdown's decisions (sans-I/O) and its sequence against the simulated unit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import pytest

from engine.hw.base import OutputCheck, OutputResult, ScalarValue
from engine.ports import EngineCommandError
from engine.shutdown import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNSAFE,
    Assessment,
    Phase,
    Reaction,
    ShutdownControl,
    assess,
    exit_code,
    shut_down,
)
from protocol.messages import RunStopped
from protocol.models import ControlAction
from tests.engine.conftest import Harness

LONG = "PU01: 50 %\nInlet: VA02\nWait: 1000 s\n"

# ---- ShutdownControl ------------------------------------------------------------------------


def test_first_request_begins_the_shutdown() -> None:
    control = ShutdownControl()
    assert control.request("SIGTERM") is Reaction.BEGIN
    assert control.phase is Phase.SAFING and control.reason == "SIGTERM"
    assert control.failure is None


def test_second_request_waits_for_the_safe_values_then_skips_the_flush() -> None:
    control = ShutdownControl()
    control.request("Ctrl+C (SIGINT)")
    assert control.request("Ctrl+C (SIGINT)") is Reaction.AFTER_SAFE
    assert control.phase is Phase.SAFING  # the safe values are not cut short
    assert control.outputs_settled() is False  # no flush: the operator asked twice


def test_a_request_during_the_flush_ends_it() -> None:
    control = ShutdownControl()
    control.request("SIGINT")
    assert control.outputs_settled() is True
    assert control.request("SIGINT") is Reaction.END_FLUSH
    control.finished()
    assert control.request("SIGINT") is Reaction.IGNORED


def test_a_failure_is_remembered_even_when_it_is_not_the_first_request() -> None:
    control = ShutdownControl()
    control.request("SIGTERM")
    control.request("link error: RuntimeError", failure=True)
    assert control.reason == "SIGTERM" and control.failure == "link error: RuntimeError"
    assert exit_code(Assessment(safe=["PU01"]), control) == EXIT_FAILED


def test_begin_only_when_nothing_asked_before() -> None:
    control = ShutdownControl()
    assert control.begin("the run loop ended") is True
    assert control.begin("again") is False
    assert control.reason == "the run loop ended"


# ---- assess ---------------------------------------------------------------------------------

SAFE: Mapping[str, ScalarValue] = {"PU01": 0.0, "Inlet": 0}


def test_confirmed_and_accepted_safe_values_are_safe() -> None:
    result = assess(
        [
            OutputResult("PU01", 1e-12, OutputCheck.CONFIRMED),
            OutputResult("Inlet", 0, OutputCheck.WRITTEN),
        ],
        SAFE,
    )
    assert result.safe == ["PU01", "Inlet"] and result.unsafe == []
    assert exit_code(result, ShutdownControl()) == EXIT_OK


def test_every_way_of_not_being_safe_is_named() -> None:
    result = assess(
        [
            OutputResult("PU01", 0.0, OutputCheck.FAILED, "link down"),
            OutputResult("Inlet", 2, OutputCheck.MISMATCH),
            OutputResult("Heater", 80.0, OutputCheck.CONFIRMED),
        ],
        {**SAFE, "Heater": 0.0, "Stirrer": "Off"},
    )
    assert result.safe == []
    assert result.unsafe == [
        "PU01: safe value 0.0 not confirmed (failed: link down)",
        "Inlet: safe value 0 not confirmed (mismatch)",
        "Heater: holds 80.0, its safe value is 0.0",
        "Stirrer: safe value 'Off' not confirmed (driver did not say)",
    ]
    assert exit_code(result, ShutdownControl()) == EXIT_UNSAFE
    assert result.summary(5.0).startswith("4 output(s) NOT made safe within 5.00 s")


def test_the_driver_s_last_word_on_a_tag_counts_and_outputs_without_safe_value_are_told() -> None:
    result = assess(
        [
            OutputResult("PU01", 50.0, OutputCheck.CONFIRMED),  # an earlier write
            OutputResult("PU01", 0.0, OutputCheck.CONFIRMED),
            OutputResult("Inlet", 0, OutputCheck.CONFIRMED),
            OutputResult("Balance Tare", 1, OutputCheck.WRITTEN),
        ],
        SAFE,
    )
    assert result.safe == ["PU01", "Inlet"] and result.unsafe == []
    assert result.other == ["Balance Tare: no safe value declared; left at 1"]


# ---- the sequence on the simulated unit -----------------------------------------------------


def _running(h: Harness) -> None:
    h.engine.control(ControlAction.START, "alice")
    h.until(lambda: h.model_inputs() == (50.0, "VA02"))


async def test_shutdown_stops_the_run_and_confirms_the_safe_values() -> None:
    h = Harness(method=LONG)
    _running(h)
    control = ShutdownControl()
    control.request("SIGTERM")
    report = await shut_down(h.engine, control, user="service", safe_timeout=1.0)
    assert h.model_inputs() == (0.0, "None")  # the device itself, not the engine's tags
    assert report.code == EXIT_OK and report.assessment.unsafe == []
    assert report.assessment.safe == ["PU01", "Inlet"]
    stopped = h.sink.of(RunStopped)
    assert len(stopped) == 1 and stopped[0]["user"] == "service"
    messages = [e.message for e in h.engine.error_log if e.source == "shutdown"]
    assert messages[0] == "shutting down (SIGTERM): stopping the run, writing safe values"
    assert messages[1].startswith("safe values confirmed for 2 output(s)")
    assert control.phase is Phase.DONE


async def test_after_shutdown_only_stop_is_accepted() -> None:
    h = Harness(method=LONG)
    control = ShutdownControl()
    control.request("SIGINT")
    await shut_down(h.engine, control, user="service", safe_timeout=1.0)
    with pytest.raises(EngineCommandError, match="shutting down"):
        h.engine.control(ControlAction.START, "alice")
    with pytest.raises(EngineCommandError, match="shutting down"):
        h.engine.inject("PU01: 80 %", "alice")
    with pytest.raises(EngineCommandError, match="no run is active"):  # by the state, not closed
        h.engine.control(ControlAction.STOP, "alice")


async def test_a_manual_output_set_while_stopped_goes_safe_too() -> None:
    h = Harness()
    h.engine.inject("PU01: 30 %", "alice")
    h.until(lambda: h.model_inputs()[0] == 30.0)
    control = ShutdownControl()
    control.request("SIGINT")
    report = await shut_down(h.engine, control, user="service", safe_timeout=1.0)
    assert h.model_inputs() == (0.0, "None")
    assert report.code == EXIT_OK


async def test_outputs_that_cannot_be_written_are_reported_and_fail_the_exit_code() -> None:
    h = Harness(method=LONG)
    _running(h)
    h.hw.fail("cable pulled")
    control = ShutdownControl()
    control.request("SIGINT")
    report = await shut_down(h.engine, control, user="service", safe_timeout=0.5)
    assert h.model_inputs() == (50.0, "VA02")  # the simulated device never got them
    assert report.code == EXIT_UNSAFE
    errors = [e.message for e in h.engine.error_log if e.level == "error"]
    assert "NOT SAFE: PU01: safe value 0.0 not confirmed (failed: link down (simulated))" in errors


class _SlowFlushLink:
    """The link's flushing side, as the shutdown uses it; never acknowledged."""

    def __init__(self) -> None:
        self.waited: list[float] = []
        self.stopped = False

    def flush(self) -> int:
        return 7

    async def wait_acked(self, seq: int, timeout: float) -> bool:
        self.waited.append(timeout)
        await asyncio.sleep(timeout)
        return False

    async def stop(self, flush_timeout: float = 10.0) -> None:
        self.stopped = True


async def test_second_request_during_settle_is_honoured_after_the_safe_values() -> None:
    h = Harness(method=LONG)
    _running(h)
    gate = asyncio.Event()
    settle: Callable[[float], Awaitable[list[OutputResult]]] = h.hw.settle_outputs
    seen: list[tuple[float, str]] = []

    async def slow_settle(timeout: float) -> list[OutputResult]:
        await gate.wait()
        return await settle(timeout)

    h.hw.settle_outputs = slow_settle
    control = ShutdownControl()
    control.request("SIGINT")
    link = _SlowFlushLink()
    task = asyncio.create_task(
        shut_down(h.engine, control, user="service", link=link, safe_timeout=5.0)
    )
    while control.phase is Phase.SAFING and not task.done():
        if control.requests == 1 and h.model_inputs()[0] == 0.0:
            assert control.request("SIGINT") is Reaction.AFTER_SAFE
            seen.append(h.model_inputs())
            gate.set()
        await asyncio.sleep(0)
    report = await asyncio.wait_for(task, 5.0)
    assert seen == [(0.0, "None")]  # written before the second request was let through
    assert report.code == EXIT_OK and report.assessment.safe == ["PU01", "Inlet"]
    assert link.waited == [] and link.stopped  # no waiting for the aggregator
    assert report.flushed is False


async def test_end_flush_event_cuts_the_wait_for_the_aggregator() -> None:
    h = Harness()
    control = ShutdownControl()
    control.request("SIGINT")
    link = _SlowFlushLink()
    end = asyncio.Event()
    task = asyncio.create_task(
        shut_down(h.engine, control, user="s", link=link, flush_timeout=60.0, end_flush=end)
    )
    while not link.waited:
        await asyncio.sleep(0)
    assert control.request("SIGINT") is Reaction.END_FLUSH
    end.set()
    report = await asyncio.wait_for(task, 5.0)
    assert link.waited == [60.0] and link.stopped and report.flushed is False


async def test_an_exception_escaping_the_scan_ends_in_the_safe_shutdown() -> None:
    """`run` wires run_realtime's last line of defence to the shutdown: the loop ends, the
    outputs go safe and the exit code says the engine failed."""
    from engine.cli_run import _RunSession
    from engine.runner import run_realtime

    h = Harness(method=LONG)
    _running(h)
    scan = h.engine.scan
    scans = 0

    def scan_with_a_bug(now: float) -> None:
        nonlocal scans
        scans += 1
        if scans == 3:
            raise RuntimeError("a bug")
        scan(now)

    async def sleep(seconds: float) -> None:
        h.clock.advance(seconds)

    h.engine.scan = scan_with_a_bug  # type: ignore[method-assign]
    control = ShutdownControl()
    session = _RunSession(control, 1.0)
    await asyncio.wait_for(
        run_realtime(
            h.engine,
            h.clock,
            session.stop,
            on_scan_error=lambda exc: session.request(f"scan error: {exc}", failure=True),
            sleep=sleep,
        ),
        5.0,
    )
    assert scans == 3 and control.reason == "scan error: a bug"
    report = await shut_down(h.engine, control, user="service", safe_timeout=1.0)
    assert h.model_inputs() == (0.0, "None")
    assert report.code == EXIT_FAILED


async def test_a_signal_during_start_up_keeps_start_from_starting_the_run() -> None:
    """`run --start`: a Ctrl+C that arrives while the hardware connects must not be followed by
    a run starting (and its outputs going on) before the shutdown begins."""
    import argparse

    from engine.cli_run import _RunSession, _serve
    from engine.lang.api import SystemState

    h = Harness(method=LONG)
    session = _RunSession(ShutdownControl(), 5.0)
    session.request("Ctrl+C (SIGINT)")
    args = argparse.Namespace(start=True, aggregator=None)
    await _serve(args, h.engine, h.clock, None, session)
    assert h.engine.state is SystemState.STOPPED
    assert h.hw.model.pump_setpoint == 0.0
