"""pcode.md section 5: built-in instructions, and UOD commands (section 7)."""

from __future__ import annotations

import pytest

from engine.lang.api import LineState, SystemState
from engine.lang.runlog import LogMessage, Notification, RunStarted, RunStopped, StateChanged
from engine.lang.testing import FakeContext
from tests.lang.conftest import Make, method


def test_base_sets_the_threshold_unit(make: Make) -> None:
    interp, run = make(method("Mark: a", "0.05 Mark: min", "Base: h", "0.001 Mark: h"))
    run.start()
    assert interp.base == "min"
    run.run_for(4)
    assert interp.base == "h"
    marks = dict((m, t) for t, m in run.marks())
    assert abs(marks["min"] - 3) < 0.11 and abs(marks["h"] - 3.6) < 0.11


def test_base_with_unknown_unit_is_an_analyzer_error(make: Make, ctx: FakeContext) -> None:
    from engine.lang.analyzer import analyze

    assert [f.code for f in analyze("Base: L", ctx)] == ["unknown-unit"]


def test_wait_holds_only_its_own_path_and_reports_progress(make: Make) -> None:
    _, run = make(method("Watch: Level > 1", "    Mark: w", "Wait: 2 s", "Mark: b"))
    run.start()
    run.context.set_value("Level", 5)
    run.run_for(1)
    assert run.mark_texts() == ["w"]
    wait = run.log_line("Wait: 2 s")
    assert wait.state == "running" and wait.progress == pytest.approx(0.5, abs=0.06)
    assert wait.forcible and wait.cancellable
    run.run_for(1.1)
    assert run.log_line("Wait: 2 s").state == "completed"
    assert run.log_line("Wait: 2 s").progress == 1.0


def test_wait_is_forcible(make: Make) -> None:
    interp, run = make(method("Wait: 1 h", "Mark: b"))
    run.start()
    interp.force(run.log_line("Wait: 1 h").id, run.now, "ann")
    run.step()
    assert run.mark_texts() == ["b"] and run.log_line("Wait: 1 h").state == "forced"


def test_mark(make: Make) -> None:
    interp, run = make("Mark: Load sample")
    run.start()
    assert interp.mark == "Load sample" and run.mark_texts() == ["Load sample"]
    assert run.log_line("Mark: Load sample").state == "completed"


@pytest.mark.parametrize("level", ["Info", "Warning", "Error"])
def test_log_levels_do_not_stop_anything(make: Make, level: str) -> None:
    interp, run = make(method(f"{level}: something happened", "Mark: after"))
    run.start()
    assert LogMessage(level.lower(), "something happened") in run.of_type(LogMessage)  # type: ignore[arg-type]
    assert run.mark_texts() == ["after"] and interp.state is SystemState.RUNNING


def test_pause_without_duration_waits_for_unpause(make: Make) -> None:
    interp, run = make(method("Base: s", "Mark: a", "Pause", "Mark: b", "1 Mark: c"))
    run.start()
    run.run_for(5)
    assert interp.state is SystemState.PAUSED and run.mark_texts() == ["a"]
    assert interp.process_time == 0 and interp.run_time == pytest.approx(5)
    interp.unpause(run.now, "ann")
    run.run_for(1.5)
    marks = dict((m, t) for t, m in run.marks())
    assert marks["b"] == pytest.approx(5.1) and marks["c"] == pytest.approx(6.0)


def test_pause_with_duration_is_cancellable(make: Make) -> None:
    interp, run = make(method("Pause: 1 h", "Mark: b"))
    run.start()
    line = run.log_line("Pause: 1 h")
    assert line.cancellable and line.forcible
    interp.cancel(line.id, run.now, "ann")
    assert interp.state is SystemState.RUNNING
    run.step()
    assert run.mark_texts() == ["b"] and run.log_line("Pause: 1 h").state == "cancelled"


@pytest.mark.parametrize("name", ["Unpause", "Unhold"])
def test_unpause_unhold_are_operator_commands(make: Make, name: str) -> None:
    state = "Pause" if name == "Unpause" else "Hold"
    interp, run = make(method(state, "Mark: b"))
    run.start()
    assert run.mark_texts() == []
    interp.inject(name, run.now, "ann")
    assert interp.state is SystemState.RUNNING
    run.step()
    assert run.mark_texts() == ["b"]


def test_hold_keeps_the_state_holding_and_timelines_still(make: Make) -> None:
    interp, run = make(method("Base: s", "Hold: 2 s", "1 Mark: b"))
    run.start()
    run.run_for(1.5)
    assert interp.state is SystemState.HOLDING and interp.process_time == 0
    run.run_for(2)
    marks = dict((m, t) for t, m in run.marks())
    assert marks["b"] == pytest.approx(3.0)
    assert interp.process_time == pytest.approx(1.5)


def test_hold_without_duration_then_unhold(make: Make) -> None:
    interp, run = make(method("Hold", "Mark: b"))
    run.start()
    run.run_for(1)
    assert interp.state is SystemState.HOLDING
    interp.unhold(run.now, "ann")
    run.step()
    assert run.mark_texts() == ["b"]


def test_stop_cancels_commands_and_clears_the_run(make: Make, ctx: FakeContext) -> None:
    interp, run = make(method("Slow", "Simulate: Level = 4", "Wait: 0.2 s", "Stop"))
    run.start()
    run_id = interp.run_id
    assert ctx.simulated == {"Level": (4.0, None)}
    run.run_for(0.5)
    assert interp.state is SystemState.STOPPED and interp.run_id == ""
    assert [h.name for h in ctx.cancelled] == ["Slow"]
    assert run.log_line("Slow").state == "cancelled"
    assert ctx.simulated == {}
    assert run.of_type(RunStopped) == [RunStopped(run_id, "Stop")]


def test_restart_starts_a_new_run_keeping_the_counter(make: Make) -> None:
    interp, run = make(method("Base: s", "Increment run counter", "Mark: go", "2 Restart"))
    run.start()
    first = interp.run_id
    run.run_for(2.5)
    assert interp.run_id != first and interp.state is SystemState.RUNNING
    assert interp.run_counter == 2
    assert interp.run_time == pytest.approx(0.5) and interp.process_time == pytest.approx(0.5)
    kinds = [
        type(e).__name__
        for _, e in run.events
        if isinstance(e, StateChanged | RunStarted | RunStopped)
    ]
    assert kinds[-4:] == ["StateChanged", "RunStopped", "RunStarted", "StateChanged"]
    assert [e.new for e in run.of_type(StateChanged)][-2:] == ["Restarting", "Running"]
    assert run.mark_texts() == ["go", "go"]


def test_run_counter_and_increment(make: Make) -> None:
    interp, run = make(method("Run counter: 7", "Increment run counter", "Stop"))
    run.start()
    assert interp.run_counter == 8
    run.start()
    assert interp.run_counter == 8  # survives Stop; the method sets it again


def test_batch(make: Make) -> None:
    interp, run = make("Batch: Lot 42")
    run.start()
    assert interp.batch_name == "Lot 42"


def test_simulate_converts_to_the_tag_unit_until_simulate_off(make: Make, ctx: FakeContext) -> None:
    _interp, run = make(
        method(
            "Simulate: TT01 = 122 degF", "Simulate: Inlet = VA02", "Wait: 1 s", "Simulate off: TT01"
        )
    )
    run.start()
    value, unit = ctx.simulated["TT01"]
    assert value == pytest.approx(50.0) and unit == "degC"
    assert ctx.tag_value("Inlet") == "VA02"
    run.run_for(1.5)
    assert "TT01" not in ctx.simulated and "Inlet" in ctx.simulated


def test_notify(make: Make) -> None:
    _, run = make("Notify: Column ready")
    run.start()
    assert run.of_type(Notification) == [Notification("Column ready")]


# -- UOD commands ----------------------------------------------------------------------------------


def test_uod_command_is_handed_over_and_the_path_moves_on(make: Make, ctx: FakeContext) -> None:
    _, run = make(method("Slow: x", "PU01: 10 %", "Mark: next"))
    run.start()
    assert [(h.name, h.argument) for h in ctx.started] == [("Slow", "x"), ("PU01", "10 %")]
    assert run.mark_texts() == ["next"]
    slow = run.log_line("Slow: x")
    assert slow.state == "running" and slow.cancellable and not slow.forcible
    assert ctx.started[0].run_log_id == slow.id
    run.step()
    assert run.log_line("PU01: 10 %").state == "completed"
    assert 0 < (run.log_line("Slow: x").progress or 0) < 1
    run.run_for(1)
    assert run.log_line("Slow: x").state == "completed"


def test_new_instance_of_a_command_cancels_the_running_one(make: Make) -> None:
    _, run = make(method("Slow: a", "Slow: b"))
    run.start()
    run.step()
    assert run.log_line("Slow: a").state == "cancelled"


def test_cancel_a_running_command(make: Make, ctx: FakeContext) -> None:
    interp, run = make("Slow")
    run.start()
    interp.cancel(run.log_line("Slow").id, run.now, "ann")
    run.collect()
    assert ctx.cancelled[0].name == "Slow" and run.log_line("Slow").state == "cancelled"


def test_failing_command_error_pauses(make: Make) -> None:
    interp, run = make(method("Fail", "Mark: goes on"))
    run.start()
    run.run_for(0.5)
    line = run.log_line("Fail")
    assert line.state == LineState.FAILED and line.message == "valve stuck"
    assert interp.state is SystemState.PAUSED and interp.method_status == "Error"
    assert interp.method_state.failed == {interp.method.lines[0].id}
    assert run.mark_texts() == ["goes on"]
    interp.unpause(run.now, "ann")
    assert interp.method_status == "OK"


def test_command_that_raises_fails_its_line_and_is_retried_after_unpause(
    make: Make, ctx: FakeContext
) -> None:
    interp, run = make(method("Boom", "Mark: after"))
    run.start()
    assert run.log_line("Boom").state == "failed" and run.log_line("Boom").message == "driver gone"
    assert interp.state is SystemState.PAUSED and run.mark_texts() == []
    ctx.commands["Boom"].raises = None
    interp.unpause(run.now, "ann")
    run.step()
    assert run.mark_texts() == ["after"] and run.log_line("Boom").state == "running"
