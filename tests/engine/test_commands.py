"""Command execution: called each scan until done, progress, init/finalize, groups, parsing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from engine.commands import CommandContext
from engine.hw.base import (
    ConnectionChanged,
    ConnectionState,
    HardwareEvent,
    OutputResult,
    Quality,
    Reading,
)
from engine.ports import EngineCommandError
from engine.uod import Number, Text, UodBuilder
from protocol.messages import RunLog, TagsUpdated
from protocol.models import ControlAction

from .conftest import Harness, build_uod, shared_ureg


def _with_ramp(calls: list[tuple[str, Any]]) -> Any:
    def init(cmd: CommandContext, value: float) -> None:
        calls.append(("init", value))

    def ramp(cmd: CommandContext, value: float) -> bool:
        calls.append(("run", cmd.iteration))
        cmd.progress = (cmd.iteration + 1) / 4
        return cmd.iteration >= 3

    def finalize(cmd: CommandContext) -> None:
        calls.append(("finalize", cmd.state.value))

    def add(uod: UodBuilder) -> None:
        uod.command(
            "Ramp",
            ramp,
            argument=Number(["L/h", "mL/min"], unit="L/h", maximum=120),
            init=init,
            finalize=finalize,
            group="pump",
        )
        uod.command("Label", lambda cmd, text: cmd.set("Inlet", "VA01"), argument=Text(r"[A-Z]+"))

    return build_uod(add)


def test_called_each_scan_until_complete_with_progress_and_hooks() -> None:
    calls: list[tuple[str, Any]] = []
    h = Harness(_with_ramp(calls))
    h.engine.inject("Ramp: 500 mL/min", "alice")
    h.step(6)
    assert calls == [
        ("init", 30.0),
        ("run", 0),
        ("run", 1),
        ("run", 2),
        ("run", 3),
        ("finalize", "completed"),
    ]
    lines = [line for m in h.sink.of(RunLog) for line in m["lines"] if line.text.startswith("Ramp")]
    assert lines[-1].state == "completed" and lines[-1].progress == 1.0
    assert lines[-1].user == "alice"


def test_group_members_cancel_each_other() -> None:
    calls: list[tuple[str, Any]] = []
    h = Harness(_with_ramp(calls))
    h.engine.inject("Ramp: 60 L/h", "alice")
    h.step(2)
    h.engine.inject("PU01: 10 %", "alice")  # same group "pump"
    h.step(2)
    assert ("finalize", "cancelled") in calls
    assert h.value("PU01") == 10.0
    states = {line.text: line.state for m in h.sink.of(RunLog) for line in m["lines"]}
    assert states["Ramp: 60 L/h"] == "cancelled"
    assert states["PU01: 10 %"] == "completed"


def test_a_new_instance_cancels_the_running_one() -> None:
    calls: list[tuple[str, Any]] = []
    h = Harness(_with_ramp(calls))
    h.engine.inject("Ramp: 60 L/h", "alice")
    h.step()
    h.engine.inject("Ramp: 30 L/h", "alice")
    h.step(6)
    assert calls.count(("finalize", "cancelled")) == 1
    assert calls.count(("finalize", "completed")) == 1


def test_argument_parsing_errors_are_clear() -> None:
    h = Harness(_with_ramp([]))
    assert h.engine.validate_command("Ramp", "5 bar") == (
        "Ramp: unit 'bar' is not accepted; use one of L/h, mL/min"
    )
    assert h.engine.validate_command("Ramp", "3000 mL/min") == (
        "Ramp: must be at most 120 L/h, not 180 L/h"
    )
    assert h.engine.validate_command("Ramp", "") == "Ramp: needs a number with a unit (L/h, mL/min)"
    assert h.engine.validate_command("Label", "abc") == "Label: 'abc' does not match [A-Z]+"
    assert h.engine.validate_command("Inlet", "VA09") == (
        "Inlet: must be one of VA01, VA02, VA03, None, not 'VA09'"
    )
    assert h.engine.validate_command("Boom", "x") == "Boom: takes no argument, got 'x'"
    with pytest.raises(EngineCommandError):
        h.engine.inject("Ramp: 5 bar", "alice")


def test_setting_a_reading_from_a_command_fails_the_command() -> None:
    h = Harness(build_uod(lambda u: u.command("Cheat", lambda cmd: cmd.set("FT01", 5.0))))
    h.engine.inject("Cheat", "alice")
    h.step(2)
    failed = [line for m in h.sink.of(RunLog) for line in m["lines"] if line.state == "failed"]
    assert failed and "reading tag and cannot be set" in (failed[0].error or "")


class FlakyHardware:
    """A driver whose connection degrades on request; readings follow the connection state."""

    def __init__(self) -> None:
        self.state = ConnectionState.OK
        self.events: list[HardwareEvent] = []
        self.registers = {t: t for t in ("PU01", "Inlet", "FT01", "PT01", "UV01", "CT01")}
        self.written: list[Mapping[str, Any]] = []

    @property
    def connection_state(self) -> ConnectionState:
        return self.state

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def snapshot(self) -> Mapping[str, Reading]:
        quality = {ConnectionState.OK: Quality.GOOD, ConnectionState.ERROR: Quality.BAD}.get(
            self.state, Quality.STALE
        )
        return {t: Reading(1.5, quality, 0.0) for t in ("FT01", "PT01", "UV01", "CT01")}

    def write(self, values: Mapping[str, Any]) -> None:
        self.written.append(dict(values))

    def write_safe_values(self) -> None: ...

    async def settle_outputs(self, timeout: float) -> list[OutputResult]:
        return []

    def drain_events(self) -> list[HardwareEvent]:
        events, self.events = self.events, []
        return events

    def go(self, new: ConnectionState) -> None:
        self.events.append(ConnectionChanged(self.state, new, "link trouble", 0.0, "plc"))
        self.state = new


def test_quality_follows_the_connection() -> None:
    from engine.clock import FakeClock
    from engine.engine import Engine

    hw = FlakyHardware()
    clock = FakeClock()
    engine = Engine(
        build_uod(), clock=clock, hardware=hw, method="Wait: 100 s\n", ureg=shared_ureg()
    )
    engine.scan(0.0)
    engine.control(ControlAction.START, "alice")
    engine.scan(0.1)
    assert engine.store["FT01"].quality == "good"
    hw.go(ConnectionState.ISSUE)
    engine.scan(0.2)
    assert engine.store["FT01"].quality == "stale"
    assert engine.state.value == "Running"  # an outage being masked does not pause
    assert engine.tag_value("Connection Status") == "Connected"
    assert any(e.level == "warning" and "plc" in e.message for e in engine.error_log)
    hw.go(ConnectionState.ERROR)
    engine.scan(0.3)
    assert engine.store["FT01"].quality == "bad"
    assert engine.state.value == "Paused"
    assert engine.tag_value("Connection Status") == "Disconnected"


def test_live_update_carries_quality() -> None:
    from engine.clock import FakeClock
    from engine.engine import Engine

    from .conftest import RecordingSink

    hw = FlakyHardware()
    sink = RecordingSink()
    engine = Engine(build_uod(), clock=FakeClock(), hardware=hw, sink=sink, ureg=shared_ureg())
    engine.scan(0.0)
    hw.go(ConnectionState.ISSUE)
    engine.scan(0.1)
    update = sink.of(TagsUpdated)[-1]
    assert {t.name: t.quality for t in update["tags"]}["FT01"] == "stale"


class WriteFailsOnce(FlakyHardware):
    """A driver whose first write raises (a port that hiccups, a driver bug fixed by a retry)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def write(self, values: Mapping[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("port busy")
        super().write(values)


def test_a_failed_write_is_retried_on_a_later_scan() -> None:
    from engine.clock import FakeClock
    from engine.engine import Engine

    hw = WriteFailsOnce()
    engine = Engine(build_uod(), clock=FakeClock(), hardware=hw, ureg=shared_ureg())
    engine.scan(0.0)
    hw.failures = 1
    engine.inject("PU01: 40 %", "alice")
    engine.scan(0.1)
    assert hw.failures == 0 and not any(w.get("PU01") == 40.0 for w in hw.written)
    assert any("port busy" in e.message for e in engine.error_log)
    engine.scan(0.2)
    engine.scan(0.3)
    assert [w["PU01"] for w in hw.written if "PU01" in w][-1] == 40.0


def test_outputs_are_written_again_after_a_reconnect() -> None:
    """The device may come back with its defaults; the engine's own record of what it wrote
    must not keep the outputs from being sent again."""
    from engine.clock import FakeClock
    from engine.engine import Engine

    hw = FlakyHardware()
    engine = Engine(build_uod(), clock=FakeClock(), hardware=hw, ureg=shared_ureg())
    engine.scan(0.0)
    engine.inject("PU01: 40 %", "alice")
    engine.scan(0.1)
    engine.scan(0.2)
    hw.written.clear()
    engine.scan(0.3)
    assert hw.written == []
    hw.go(ConnectionState.RECONNECT)
    engine.scan(0.4)
    hw.go(ConnectionState.OK)
    engine.scan(0.5)
    assert {"PU01": 40.0, "Inlet": "None"}.items() <= {
        k: v for w in hw.written for k, v in w.items()
    }.items()
