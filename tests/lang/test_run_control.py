"""The run-control state table of engine/lang/interpreter.py, every cell."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.lang.api import SystemState
from engine.lang.interpreter import Interpreter, RunControlError
from engine.lang.runlog import LogMessage, RunStarted, RunStopped
from engine.lang.testing import Runner
from tests.lang.conftest import Make, method

S = SystemState


def into(state: SystemState, interp: Interpreter, run: Runner) -> None:
    if state is S.STOPPED:
        return
    run.start()
    if state is S.PAUSED:
        interp.pause(run.now, "ann")
    elif state is S.HOLDING:
        interp.hold(run.now, "ann")
    assert interp.state is state


COMMANDS = ["start", "stop", "pause", "unpause", "hold", "unhold", "restart"]
TABLE: dict[SystemState, dict[str, SystemState | None]] = {
    S.STOPPED: {"start": S.RUNNING},
    S.RUNNING: {"stop": S.STOPPED, "pause": S.PAUSED, "hold": S.HOLDING, "restart": S.RUNNING},
    S.PAUSED: {"stop": S.STOPPED, "unpause": S.RUNNING, "restart": S.RUNNING},
    S.HOLDING: {"stop": S.STOPPED, "pause": S.PAUSED, "unhold": S.RUNNING, "restart": S.RUNNING},
}


@pytest.mark.parametrize("state", list(TABLE))
@pytest.mark.parametrize("command", COMMANDS)
def test_every_cell(make: Make, state: SystemState, command: str) -> None:
    interp, run = make(method("Mark: a"))
    into(state, interp, run)
    run_id = interp.run_id
    action: Callable[[float, str | None], None] = getattr(interp, command)
    expected = TABLE[state].get(command)
    if expected is None:
        with pytest.raises(RunControlError) as raised:
            action(run.now, "ann")
        assert str(raised.value).startswith(f"Cannot {command}")
        assert interp.state is state and interp.run_id == run_id
        return
    action(run.now, "ann")
    run.collect()
    assert interp.state is expected
    line = run.log_line(command.capitalize())
    assert line.user == "ann" and line.state == "completed"
    if command == "restart":
        assert interp.run_id not in ("", run_id)


def test_pause_from_holding_returns_to_holding(make: Make) -> None:
    interp, run = make("Mark: a")
    run.start()
    interp.hold(run.now, "ann")
    interp.pause(run.now, "ann")
    interp.unpause(run.now, "ann")
    assert interp.state is S.HOLDING


def test_start_refuses_a_method_with_errors_listing_them(make: Make) -> None:
    interp, run = make(method("Mrak: a", "Wait: soon", "Mark: fine"))
    with pytest.raises(RunControlError) as raised:
        run.start()
    message = str(raised.value)
    assert "line 1:1" in message and "Did you mean 'Mark'" in message and "line 2" in message
    assert interp.state is S.STOPPED and run.of_type(RunStarted) == []


def test_start_accepts_warnings(make: Make) -> None:
    interp, run = make(method("Block: A", "    Mark: a"))
    run.start()
    assert interp.state is S.RUNNING


def test_start_gives_a_new_run_with_times_from_zero(make: Make) -> None:
    interp, run = make("Mark: a")
    run.run_for(3)
    run.start("ann")
    assert interp.run_id == "run-1" and interp.run_time == 0 and interp.process_time == 0
    assert run.of_type(RunStarted) == [RunStarted("run-1", "ann")]
    run.run_for(1)
    interp.stop(run.now, "ann")
    run.collect()
    assert run.of_type(RunStopped) == [RunStopped("run-1", "Stop", "ann")]
    run.start()
    assert interp.run_id == "run-2"


@pytest.mark.parametrize("state", [S.RUNNING, S.HOLDING, S.PAUSED])
def test_error_pause(make: Make, state: SystemState) -> None:
    interp, run = make("Mark: a")
    into(state, interp, run)
    interp.error_pause(run.now, "Modbus timeout")
    run.collect()
    assert interp.state is S.PAUSED and interp.method_status == "Error"
    assert LogMessage("error", "Modbus timeout") in run.of_type(LogMessage)
    interp.unpause(run.now, "ann")
    assert interp.method_status == "OK"


def test_error_pause_when_stopped_only_logs(make: Make) -> None:
    interp, run = make("Mark: a")
    interp.error_pause(run.now, "Modbus timeout")
    assert interp.state is S.STOPPED and interp.method_status == "OK"


def test_error_pause_cancels_a_timed_pause(make: Make) -> None:
    interp, run = make("Pause: 1 s")
    run.start()
    interp.error_pause(run.now, "broken")
    run.run_for(2)
    assert interp.state is S.PAUSED and interp.method_status == "Error"


def test_wall_clock_times_work_from_the_first_scan(make: Make) -> None:
    """The engine passes wall-clock seconds; the first time seen starts the clock."""
    interp, _ = make(method("Base: s", "2 Mark: b"))
    wall = 1_763_700_000.0
    interp.tick(wall)
    interp.start(wall + 0.05, "ann")
    for n in range(1, 25):
        interp.tick(wall + 0.05 + n * 0.1)
    assert interp.mark == "b"
    assert abs(interp.process_time - 2.4) < 1e-6
    assert abs(interp.run_time - 2.4) < 1e-6


def test_method_state_sets_and_events(make: Make) -> None:
    from engine.lang.runlog import MethodStateChanged

    interp, run = make(method("Mark: a", "Slow", "Boom"))
    run.start()
    ids = [line.id for line in interp.method.lines]
    state = interp.method_state
    assert state.started == set(ids)
    assert state.completed == {ids[0]} and state.failed == {ids[2]}
    run.run_for(1)
    assert interp.method_state.completed == {ids[0], ids[1]}
    assert run.of_type(MethodStateChanged)


@pytest.mark.parametrize(
    ("text", "busy_for", "complete"),
    [
        ("Mark: a\nWait: 2 s", 1.5, True),  # waits, then sits at the end of the method
        ("Block: B\n    Mark: in\n    Wait: 1 s", 0.5, True),  # at the end of a block nobody ends
        ("Watch: TT01 > 50 degC\n    Mark: hot", 5.0, False),  # armed: the process may fire it
        ("Slow", 0.2, True),  # a command running, then done (5 ticks)
        ("Mark: a\nHold: 2 s", 1.5, True),  # a timed hold, then Running again
    ],
)
def test_method_complete_when_nothing_is_left_to_run(
    make: Make, text: str, busy_for: float, complete: bool
) -> None:
    """What a simulation ends on (engine/model_run_core.py, `simulate`): the method has nothing
    left that could run another line while the unit stays Running."""
    interp, run = make(method(text))
    assert not interp.method_complete  # Stopped
    run.start()
    run.run_for(busy_for)
    assert not interp.method_complete
    run.run_for(3.0)
    assert interp.state is S.RUNNING and interp.method_complete is complete
