"""Run control through the engine: the state table, and safe outputs on every path into a safe
state (engine start, Pause, Stop, error pause, hardware error) and back out of it."""

from __future__ import annotations

import pytest

from engine.ports import EngineCommandError
from protocol.messages import RunLog
from protocol.models import ControlAction

from .conftest import Harness, build_uod

LONG = "Mark: a\nWait: 1000 s\nMark: b\n"

A = ControlAction
# state -> {action: resulting state}; every action not listed must be refused.
TABLE: dict[str, dict[ControlAction, str]] = {
    "Stopped": {A.START: "Running"},
    "Running": {A.STOP: "Stopped", A.PAUSE: "Paused", A.HOLD: "Holding", A.RESTART: "Running"},
    "Paused": {A.STOP: "Stopped", A.UNPAUSE: "Running", A.RESTART: "Running"},
    "Holding": {A.STOP: "Stopped", A.PAUSE: "Paused", A.UNHOLD: "Running", A.RESTART: "Running"},
}
PATH_TO = {
    "Stopped": [],
    "Running": [A.START],
    "Paused": [A.START, A.PAUSE],
    "Holding": [A.START, A.HOLD],
}


def _in_state(state: str) -> Harness:
    h = Harness(method=LONG)
    for action in PATH_TO[state]:
        h.engine.control(action, "alice")
        h.step()
    assert h.engine.state.value == state
    return h


@pytest.mark.parametrize("state", list(TABLE))
@pytest.mark.parametrize("action", list(ControlAction))
def test_state_table(state: str, action: ControlAction) -> None:
    h = _in_state(state)
    expected = TABLE[state].get(action)
    if expected is None:
        with pytest.raises(EngineCommandError) as info:
            h.engine.control(action, "alice")
        assert info.value.message  # a clear refusal, e.g. "Cannot unpause: the unit is Running"
        assert action.value.lower() in info.value.message.lower()
        assert h.engine.state.value == state
    else:
        h.engine.control(action, "alice")
        h.step()
        assert h.engine.state.value == expected
        assert h.value("System State") == expected


def test_unpause_returns_to_holding_when_paused_from_hold() -> None:
    h = _in_state("Holding")
    h.engine.control(A.PAUSE, "alice")
    h.engine.control(A.UNPAUSE, "alice")
    assert h.engine.state.value == "Holding"


def test_start_refused_when_the_method_has_errors() -> None:
    h = Harness(method="Mark: a\nPU01: 300 %\n")
    with pytest.raises(EngineCommandError, match="error"):
        h.engine.control(A.START, "alice")
    assert h.engine.state.value == "Stopped"


def _drive(h: Harness, pump: float = 40.0, inlet: str = "VA02") -> None:
    h.engine.inject(f"PU01: {pump:g} %\nInlet: {inlet}", "alice")
    h.step(2)
    assert h.model_inputs() == (pump, inlet)


def test_safe_outputs_at_engine_start() -> None:
    h = Harness()
    assert h.model_inputs() == (0.0, "None")
    assert h.value("PU01") == 0.0
    assert h.value("Inlet") == "None"


def test_manual_commands_act_while_stopped() -> None:
    h = Harness()
    _drive(h, 30.0, "VA01")
    assert h.engine.state.value == "Stopped"
    h.run_for(5)
    assert h.value("FT01") > 30.0  # the pump really runs


def test_pause_applies_safe_values_and_unpause_restores_them() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.PAUSE, "alice")
    assert h.model_inputs() == (0.0, "None")  # at once, not a scan later
    h.step(5)
    assert h.model_inputs() == (0.0, "None")
    h.engine.control(A.UNPAUSE, "alice")
    assert h.model_inputs() == (40.0, "VA02")
    assert h.value("PU01") == 40.0


def test_stop_applies_safe_values_for_good() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.STOP, "alice")
    assert h.model_inputs() == (0.0, "None")
    h.step(5)
    assert h.model_inputs() == (0.0, "None")


def test_stop_from_paused_does_not_restore() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.PAUSE, "alice")
    h.engine.control(A.STOP, "alice")
    h.step(3)
    assert h.model_inputs() == (0.0, "None")


def test_hold_keeps_outputs() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.HOLD, "alice")
    h.step(5)
    assert h.model_inputs() == (40.0, "VA02")


def test_pause_from_hold_is_safe_and_unpause_restores() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.HOLD, "alice")
    h.engine.control(A.PAUSE, "alice")
    assert h.model_inputs() == (0.0, "None")
    h.engine.control(A.UNPAUSE, "alice")
    assert h.engine.state.value == "Holding"
    assert h.model_inputs() == (40.0, "VA02")


def test_restart_starts_from_safe_outputs() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.RESTART, "alice")
    assert h.engine.state.value == "Running"
    assert h.model_inputs() == (0.0, "None")


def test_timed_pause_in_a_method() -> None:
    h = Harness(method="Base: s\nPU01: 40 %\nInlet: VA02\n1 Pause: 2 s\nMark: b\n")
    h.engine.control(A.START, "alice")
    h.until(lambda: h.engine.state.value == "Paused")
    assert h.model_inputs() == (0.0, "None")
    h.until(lambda: "b" in h.marks(), seconds=5)
    assert h.engine.state.value == "Running"
    assert h.model_inputs() == (40.0, "VA02")
    assert h.value("Run Time") >= 3.0


def test_failing_command_pauses_with_safe_outputs_and_the_loop_goes_on() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.inject("Boom", "alice")
    h.step()  # the command runs (and raises) in the scan's command phase
    assert h.engine.state.value == "Paused"
    assert h.model_inputs() == (0.0, "None")
    h.step(10)  # scanning continues
    assert h.value("Method Status") == "Error"
    failed = [e for e in h.events if e.kind == "command" and e.detail == "failed"]
    assert [e.text for e in failed] == ["Boom"]
    assert any("the valve driver exploded" in entry.message for entry in h.engine.error_log)
    h.engine.control(A.UNPAUSE, "alice")
    assert h.model_inputs() == (40.0, "VA02")
    assert h.value("Method Status") == "OK"


def test_command_failing_after_some_scans_in_a_method() -> None:
    h = Harness(method="PU01: 40 %\nLate boom\nMark: after\n")
    h.engine.control(A.START, "alice")
    h.until(lambda: h.engine.state.value == "Paused", seconds=2)
    assert h.model_inputs()[0] == 0.0
    h.step()  # the interpreter records the failure when it next polls the command
    lines = [f["lines"][0] for f in h.sink.of(RunLog)]
    failed = [line for line in lines if line.state == "failed"]
    assert failed and failed[-1].text == "Late boom"
    assert "bad reading in command" in (failed[-1].error or "")


def test_failing_calculated_tag_pauses_and_marks_the_tag_bad() -> None:
    def broken(values: object) -> float:
        raise ZeroDivisionError("division by zero")

    h = Harness(build_uod(lambda u: u.calculated("Ratio", broken, unit="bar")), method=LONG)
    h.engine.control(A.START, "alice")
    h.step(3)
    assert h.engine.state.value == "Paused"
    assert h.engine.store["Ratio"].quality == "bad"
    logged = sum("Ratio" in e.message for e in h.engine.error_log)
    assert logged >= 1
    h.step(10)  # not logged again every scan
    assert sum("Ratio" in e.message for e in h.engine.error_log) == logged


def test_hardware_error_pauses_and_sets_connection_status() -> None:
    h = _in_state("Running")
    _drive(h)
    h.hw.fail("cable pulled")
    h.step()
    assert h.engine.state.value == "Paused"
    assert h.value("Connection Status") == "Disconnected"
    assert h.value("PU01") == 0.0 and h.value("Inlet") == "None"
    assert h.engine.store["FT01"].quality == "bad"
    assert any("cable pulled" in e.message for e in h.engine.error_log)
    h.hw.recover()
    h.step()
    assert h.value("Connection Status") == "Connected"
    assert h.model_inputs() == (0.0, "None")  # the queued safe values reached the device


def test_invalid_injection_is_refused_clearly() -> None:
    h = Harness()
    with pytest.raises(EngineCommandError, match="at most 100"):
        h.engine.inject("PU01: 300 %", "alice")
    with pytest.raises(EngineCommandError, match="Inlet"):
        h.engine.inject("Inlet: VA09", "alice")


def test_restart_from_paused_keeps_outputs_safe() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.PAUSE, "alice")
    h.engine.control(A.RESTART, "alice")
    h.step(3)
    assert h.engine.state.value == "Running"
    assert h.model_inputs() == (0.0, "None")


def test_a_failing_hardware_snapshot_is_logged_once_and_pauses() -> None:
    h = _in_state("Running")
    _drive(h)

    def broken() -> object:
        raise OSError("driver bug")

    h.hw.snapshot = broken
    h.step(5)
    assert h.engine.state.value == "Paused"
    assert h.model_inputs() == (0.0, "None")
    assert sum("driver bug" in e.message for e in h.engine.error_log) == 1


def test_a_failing_sink_does_not_stop_the_scan() -> None:
    h = _in_state("Running")

    class Broken:
        def emit(self, kind: object, /, **fields: object) -> None:
            raise RuntimeError("disk full")

    h.engine.sink = Broken()
    h.step(20)
    assert h.engine.sink_errors > 0
    assert "disk full" in (h.engine.last_sink_error or "")
    assert h.value("Run Time") >= 2.0


def test_a_manual_command_during_pause_is_kept_on_unpause() -> None:
    h = _in_state("Running")
    _drive(h)
    h.engine.control(A.PAUSE, "alice")
    h.engine.inject("PU01: 5 %", "bob")
    h.step(2)
    assert h.model_inputs() == (5.0, "None")  # acts at once, even while paused
    h.engine.control(A.UNPAUSE, "alice")
    assert h.model_inputs() == (5.0, "VA02")


def test_the_interpreter_states_are_the_wire_enums() -> None:
    """One definition of the states: what the interpreter reports goes on the wire as it is."""
    import engine.lang as lang
    from engine.lang import api
    from protocol import models

    assert api.SystemState is models.SystemState and lang.SystemState is models.SystemState
    assert api.LineState is models.LineState and lang.LineState is models.LineState
    h = Harness(method="Mark: a\n")
    h.engine.control(ControlAction.START, "alice")
    assert h.engine.state is h.engine.interpreter.state is models.SystemState.RUNNING
