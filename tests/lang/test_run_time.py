"""Run Time versus Process Time during Pause and Hold (docs/pcode.md, "Run Time and Process
Time"): each statement of that section, checked."""

from __future__ import annotations

import pytest

from engine.lang.api import SystemState
from engine.lang.interpreter import Interpreter
from tests.lang.conftest import Make, method


def _state(interp: Interpreter) -> SystemState:
    return interp.state


@pytest.mark.parametrize("stop_it", ["pause", "hold", "error_pause"])
def test_run_time_goes_on_while_process_time_stands_still(make: Make, stop_it: str) -> None:
    interp, run = make(method("Base: s", "Block: B", "    Wait: 10 s", "    Mark: waited"))
    run.start()
    run.run_for(2)
    if stop_it == "error_pause":
        interp.error_pause(run.now, "pump tripped")
    else:
        getattr(interp, stop_it)(run.now, "ann")
    run.run_for(5)
    assert interp.run_time == pytest.approx(7)
    assert interp.process_time == pytest.approx(2)
    assert interp.block_time == pytest.approx(2) and interp.scope_time == pytest.approx(2)
    assert run.log_line("Wait: 10 s").progress == pytest.approx(0.2)
    (interp.unhold if stop_it == "hold" else interp.unpause)(run.now, "ann")
    run.run_for(8.05)
    assert run.mark_texts() == ["waited"]
    assert next(t for t, m in run.marks() if m == "waited") == pytest.approx(15, abs=0.11)


def test_a_timed_pause_lasts_its_duration_in_run_time(make: Make) -> None:
    interp, run = make(method("Base: s", "Pause: 3 s", "Mark: after"))
    run.start()
    run.run_for(2.9)
    assert _state(interp) is SystemState.PAUSED and interp.process_time == 0
    run.step()
    assert _state(interp) is SystemState.RUNNING and run.mark_texts() == ["after"]


def test_watch_on_run_time_crossed_during_a_pause_fires_after_unpause(make: Make) -> None:
    interp, run = make(method("Watch: Run Time > 2 s", "    Mark: late", "Pause"))
    run.start()
    run.run_for(5)
    assert run.mark_texts() == []
    interp.unpause(run.now, "ann")
    run.step()
    assert run.mark_texts() == ["late"]


def test_watch_on_process_time_waits_for_running_time(make: Make) -> None:
    interp, run = make(method("Watch: Process Time > 2 s", "    Mark: two", "Hold"))
    run.start()
    run.run_for(5)
    interp.unhold(run.now, "ann")
    run.run_for(1.95)
    assert run.mark_texts() == []
    run.run_for(0.2)
    assert run.mark_texts() == ["two"]
