"""pcode.md section 7: what the operator can cancel and force from the run log."""

from __future__ import annotations

import pytest

from engine.lang.api import SystemState
from engine.lang.interpreter import LineActionError
from tests.lang.conftest import Make, method


@pytest.mark.parametrize(
    ("lines", "target"),
    [
        (("Base: s", "5 Mark: m"), "5 Mark: m"),
        (("Base: s", "Macro: M", "    Mark: m", "5 Call macro: M"), "5 Call macro: M"),
        (("Base: s", "5 Notify: n"), "5 Notify: n"),
        (("Block: B", "    Mark: b"), "Block: B"),
        (("Macro: M", "    Mark: m"), "Macro: M"),
        (("Mark: m",), "Mark: m"),
    ],
)
@pytest.mark.parametrize("action", ["cancel", "force"])
def test_lines_that_can_be_neither(
    make: Make, lines: tuple[str, ...], target: str, action: str
) -> None:
    interp, run = make(method(*lines))
    run.start()
    line = run.log_line(target)
    assert not line.cancellable and not line.forcible
    with pytest.raises(LineActionError, match="can be neither cancelled nor forced"):
        getattr(interp, action)(line.id, run.now, "ann")


@pytest.mark.parametrize("name", ["Pause", "Hold"])
@pytest.mark.parametrize("action", ["cancel", "force"])
def test_pause_and_hold_without_duration(make: Make, name: str, action: str) -> None:
    interp, run = make(name)
    run.start()
    with pytest.raises(LineActionError, match=f"'{name}' without a duration"):
        getattr(interp, action)(run.log_line(name).id, run.now, "ann")


@pytest.mark.parametrize(("name", "state"), [("Pause", "cancelled"), ("Hold", "forced")])
def test_pause_and_hold_with_duration(make: Make, name: str, state: str) -> None:
    interp, run = make(method(f"{name}: 10 min", "Mark: after"))
    run.start()
    action = interp.cancel if state == "cancelled" else interp.force
    action(run.log_line(f"{name}: 10 min").id, run.now, "ann")
    run.step()
    assert interp.state is SystemState.RUNNING and run.mark_texts() == ["after"]
    assert run.log_line(f"{name}: 10 min").state == state


def test_force_a_threshold(make: Make) -> None:
    interp, run = make(method("Base: s", "100 Info: late", "Mark: next"))
    run.start()
    line = run.log_line("100 Info: late")
    assert line.forcible and line.cancellable and line.state == "running"
    interp.force(line.id, run.now, "ann")
    run.step()
    assert run.log_line("100 Info: late").state == "forced"
    assert run.mark_texts() == ["next"]


def test_cancel_a_threshold_skips_the_line(make: Make) -> None:
    interp, run = make(method("Base: s", "100 PU01: 10 %", "Mark: next"))
    run.start()
    interp.cancel(run.log_line("100 PU01: 10 %").id, run.now, "ann")
    run.step()
    assert run.log_line("100 PU01: 10 %").state == "cancelled"
    assert run.mark_texts() == ["next"] and run.context.started == []


def test_force_a_threshold_of_a_command_then_it_runs(make: Make) -> None:
    interp, run = make(method("Base: s", "100 Slow"))
    run.start()
    interp.force(run.log_line("100 Slow").id, run.now, "ann")
    run.step()
    assert [h.name for h in run.context.started] == ["Slow"]


def test_cancel_wait(make: Make) -> None:
    interp, run = make(method("Wait: 1 h", "Mark: after"))
    run.start()
    interp.cancel(run.log_line("Wait: 1 h").id, run.now, "ann")
    run.step()
    assert run.log_line("Wait: 1 h").state == "cancelled" and run.mark_texts() == ["after"]


def test_force_alarm_fires_it_now_and_it_stays_armed(make: Make) -> None:
    interp, run = make(method("Alarm: Level > 100", "    Mark: a"))
    run.start()
    interp.force(run.log_line("Alarm: Level > 100").id, run.now, "ann")
    run.run_for(1)
    assert run.mark_texts() == ["a"]
    assert run.log_line("Alarm: Level > 100").state == "running"


def test_running_command_cannot_be_forced(make: Make) -> None:
    interp, run = make("Slow")
    run.start()
    with pytest.raises(LineActionError, match="cancelled, not forced"):
        interp.force(run.log_line("Slow").id, run.now, "ann")


def test_finished_and_unknown_lines(make: Make) -> None:
    interp, run = make("Info: x")
    run.start()
    with pytest.raises(LineActionError, match="has finished"):
        interp.cancel(run.log_line("Info: x").id, run.now, "ann")
    with pytest.raises(LineActionError, match="No run-log line"):
        interp.force("nope", run.now, "ann")
