"""Alarms in the engine: declared in a UOD, checked at build, evaluated every scan, reported as
AlarmsUpdated and run-log lines, acted on by operators; `Simulate:` in a method raises them."""

from __future__ import annotations

from typing import Any

import pytest

from engine.ports import EngineCommandError
from engine.uod import UodBuilder
from engine.uod.errors import UodError
from protocol.messages import AlarmsUpdated, RunLog
from protocol.models import (
    AlarmAction,
    AlarmCause,
    AlarmEvent,
    AlarmKind,
    AlarmPriority,
    AlarmState,
    ControlAction,
)

from .conftest import Harness, build_uod

METHOD = """Base: s
PU01: 10 %
1 Simulate: PT01 = 4.5 bar
6 Simulate: PT01 = 2.5 bar
12 Mark: done
"""


def _alarms(uod: UodBuilder) -> None:
    uod.alarm("PT01 high", "PT01 > 3 bar", priority="high", delay=2.0, deadband=0.2)
    uod.alarm("PT01 high-high", "PT01 > 4000 mbar", priority="urgent", max_shelve_minutes=0)
    uod.discrete_alarm("Inlet", ["VA03"], name="Sample inlet open", priority="low")
    uod.entry("PU01 SP", unit="%", direction="none")
    uod.deviation_alarm(
        "PU01 SP", "PU01", 5.0, suppress_when="System State = Stopped", escalation_minutes=5
    )


def _events(h: Harness) -> list[AlarmEvent]:
    return [e for f in h.sink.of(AlarmsUpdated) if not f.get("snapshot") for e in f["events"]]


def _states(h: Harness, name: str) -> list[tuple[str, str]]:
    return [(e.state.value, e.cause.value) for e in _events(h) if e.name == name]


@pytest.fixture(scope="module")
def uod() -> Any:
    return build_uod(_alarms)


def test_registration_describes_the_alarms(uod: Any) -> None:
    described = {a.name: a for a in uod.describe().alarms}
    high = described["PT01 high"]
    assert (high.kind, high.priority, high.condition, high.tag) == (
        AlarmKind.CONDITION,
        AlarmPriority.HIGH,
        "PT01 > 3 bar",
        "PT01",
    )
    assert (high.delay, high.deadband) == (2.0, 0.2)
    assert described["PT01 high-high"].max_shelve_minutes == 0
    discrete = described["Sample inlet open"]
    assert (discrete.kind, discrete.condition) == (AlarmKind.DISCRETE, "Inlet = VA03")
    deviation = described["PU01 deviation"]
    assert deviation.condition == "|PU01 - PU01 SP| > 5 %"
    assert (deviation.suppress_when, deviation.escalation_minutes) == ("System State = Stopped", 5)


def test_first_scan_sends_a_snapshot_of_every_alarm(uod: Any) -> None:
    h = Harness(uod)
    [first] = h.sink.of(AlarmsUpdated)
    assert first["snapshot"] is True
    states = {e.name: e.state for e in first["events"]}
    assert states == {
        "PT01 high": AlarmState.NORMAL,
        "PT01 high-high": AlarmState.NORMAL,
        "Sample inlet open": AlarmState.NORMAL,
        "PU01 deviation": AlarmState.SUPPRESSED,  # Stopped, from the start: no transition
    }
    assert all(e.cause is AlarmCause.SNAPSHOT for e in first["events"])
    h.step(3)
    assert _events(h) == []


def test_simulate_in_a_method_raises_the_alarms(uod: Any) -> None:
    h = Harness(uod, method=METHOD)
    h.engine.control(ControlAction.START, "ann")
    h.run_for(1.05)
    assert _states(h, "PT01 high-high") == [("unack_active", "condition")]
    assert _states(h, "PT01 high") == [], "on-delay of 2 s"
    h.run_for(2.0)
    assert _states(h, "PT01 high") == [("unack_active", "condition")]
    raised = next(e for e in _events(h) if e.name == "PT01 high")
    assert raised.value == 4.5 and raised.priority is AlarmPriority.HIGH
    run_id = h.engine.interpreter.run_id
    messages = [f for f in h.sink.of(AlarmsUpdated) if not f.get("snapshot")]
    assert all(f["run_id"] == run_id for f in messages)

    h.engine.alarm_action("PT01 high", AlarmAction.ACK, "bob", comment="on it")
    assert _states(h, "PT01 high")[-1] == ("ack_active", "ack")
    h.run_for(3.5)  # PT01 = 2.5 bar: both clear
    assert _states(h, "PT01 high")[-1] == ("normal", "condition")
    assert _states(h, "PT01 high-high")[-1] == ("rtn_unack", "condition")

    lines = [line for f in h.sink.of(RunLog) for line in f["lines"] if line.id.startswith("alarm")]
    texts = [line.text for line in lines]
    assert texts[0] == "Alarm PT01 high-high: normal -> unack_active (condition, value 4.5)"
    assert "Alarm PT01 high: unack_active -> ack_active (ack, value 4.5): on it" in texts
    assert [line.user for line in lines if "(ack" in line.text] == ["bob"]
    assert len({line.id for line in lines}) == len(lines)


def test_deviation_alarm_follows_the_setpoint_and_its_suppression(uod: Any) -> None:
    h = Harness(uod, method="Base: s\nPU01: 20 %\n30 Mark: end\n")
    h.engine.control(ControlAction.START, "ann")
    h.step()
    assert _states(h, "PU01 deviation") == [("normal", "unsuppressed")]
    h.engine.inject("PU01: 20 %", "ann")
    h.engine._set_output("PU01 SP", 10.0)  # the setpoint the pump should follow
    h.step()
    assert _states(h, "PU01 deviation")[-1] == ("unack_active", "condition")
    h.engine.control(ControlAction.STOP, "ann")
    h.step()
    assert _states(h, "PU01 deviation")[-1][0] == "suppressed"


def test_discrete_alarm_on_a_choice_tag(uod: Any) -> None:
    h = Harness(uod)
    h.engine.inject("Inlet: VA03", "ann")
    h.step()
    assert _states(h, "Sample inlet open") == [("unack_active", "condition")]
    h.engine.inject("Inlet: VA01", "ann")
    h.step()
    assert _states(h, "Sample inlet open")[-1] == ("rtn_unack", "condition")


def test_operator_actions_are_refused_with_a_clear_message(uod: Any) -> None:
    h = Harness(uod)
    cases: list[tuple[tuple[str, AlarmAction | str], dict[str, Any], str]] = [
        (("PT01 high", AlarmAction.ACK), {}, "alarm 'PT01 high' is normal"),
        (("PT01 high", AlarmAction.SHELVE), {"minutes": 5}, "needs a reason"),
        (("PT01 high", AlarmAction.SHELVE), {"minutes": 90, "reason": "x"}, "at most 60 minutes"),
        (
            ("PT01 high-high", AlarmAction.SHELVE),
            {"minutes": 1, "reason": "x"},
            "cannot be shelved",
        ),
        (("PT01 high", AlarmAction.OUT_OF_SERVICE), {}, "needs a reason"),
        (("PT01 hgih", AlarmAction.ACK), {}, "unknown alarm 'PT01 hgih'"),
        (("PT01 high", "silence"), {}, "unknown alarm action 'silence'"),
    ]
    for (name, action), kwargs, message in cases:
        with pytest.raises(EngineCommandError, match=message):
            h.engine.alarm_action(name, action, "ann", **kwargs)
    assert _events(h) == []


def test_shelve_expires_on_the_engine_clock(uod: Any) -> None:
    h = Harness(uod)
    h.engine.alarm_action("PT01 high", AlarmAction.SHELVE, "ann", minutes=1, reason="calibration")
    [shelved] = _events(h)
    assert shelved.state is AlarmState.SHELVED
    assert shelved.shelved_until == pytest.approx(h.clock.wall(h.clock.monotonic()) + 60)
    h.run_for(59.5)
    assert len(_events(h)) == 1
    h.run_for(1.0)
    assert _states(h, "PT01 high")[-1] == ("normal", "shelve_expired")


def test_out_of_service_hides_a_raised_alarm(uod: Any) -> None:
    h = Harness(uod)
    h.engine.alarm_action("PT01 high", AlarmAction.OUT_OF_SERVICE, "ann", reason="PT01 removed")
    h.engine.simulate("PT01", 5.0, "bar")
    h.run_for(3.0)
    assert _states(h, "PT01 high") == [
        ("out_of_service", "out_of_service"),
        ("out_of_service", "condition"),
    ]
    h.engine.alarm_action("PT01 high", AlarmAction.RETURN_TO_SERVICE, "ann")
    assert _states(h, "PT01 high")[-1] == ("unack_active", "return_to_service")


def test_no_alarms_no_messages() -> None:
    h = Harness(build_uod())
    h.step(3)
    assert h.sink.of(AlarmsUpdated) == []


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (
            lambda u: u.alarm("A", "PT02 > 3 bar"),
            "alarm 'A': condition 'PT02 > 3 bar': Unknown tag",
        ),
        (lambda u: u.alarm("A", "PT01 > 3 m"), "Unit 'm' cannot be compared with 'PT01'"),
        (lambda u: u.alarm("A", "PT01 > 3"), "Missing unit: 'PT01' is in bar"),
        (lambda u: u.alarm("A", "PT01 > 3 bar", priority="critical"), "alarm priority 'critical'"),
        (
            lambda u: u.alarm("A", "PT01 > 3 bar", delay=-1),
            "alarm 'A': delay must be a number >= 0",
        ),
        (
            lambda u: u.alarm("A", "PT01 > 3 bar", escalation_minutes=0),
            "escalation_minutes must be a number > 0",
        ),
        (
            lambda u: u.alarm("A", "Inlet = VA01", deadband=1),
            "a deadband needs a numeric condition",
        ),
        (
            lambda u: u.alarm("A", "PT01 > 3 bar", suppress_when="Mode = Off"),
            "suppress_when 'Mode = Off': Unknown tag 'Mode'",
        ),
        (
            lambda u: u.alarm("A", "PT01 > 3 bar").alarm("A", "PT01 > 4 bar"),
            "alarm 'A' is declared twice",
        ),
        (lambda u: u.discrete_alarm("PT01", ["High"]), "'PT01' is not a choice tag"),
        (lambda u: u.discrete_alarm("Inlet", ["VA09"]), "'VA09' is not a value of 'Inlet'"),
        (lambda u: u.deviation_alarm("FT01", "PT01", 1.0), "the setpoint 'FT01' must be an entry"),
        (lambda u: u.deviation_alarm("PU01", "PT01", 1.0), "'PT01' is in bar but its setpoint"),
        (
            lambda u: u.deviation_alarm("PU01", "PU01", 0),
            "the deviation limit must be a number > 0",
        ),
    ],
)
def test_bad_alarm_declarations_are_refused_at_build(declare: Any, message: str) -> None:
    with pytest.raises(UodError) as info:
        build_uod(declare)
    assert message in str(info.value)
    assert "\n" not in str(info.value).strip()
