"""pcode.md section 4: control structures."""

from __future__ import annotations

import pytest

from engine.lang.api import SystemState
from engine.lang.runlog import LogMessage
from tests.lang.conftest import Make, method


def at(run_marks: list[tuple[float, str]], text: str) -> float:
    return next(t for t, m in run_marks if m == text)


# -- Block ---------------------------------------------------------------------------------------


def test_block_sets_the_block_tag_and_waits_after_its_last_line(make: Make) -> None:
    interp, run = make(method("Block: Fill", "    Mark: in", "Mark: after"))
    run.start()
    run.run_for(5)
    assert run.mark_texts() == ["in"]
    assert interp.block == "Fill"
    assert interp.block_time == pytest.approx(5)
    interp.inject("End block", run.now, "ann")
    assert interp.block == ""
    run.step()
    assert run.mark_texts() == ["in", "after"]


def test_block_tag_returns_to_the_outer_block(make: Make) -> None:
    interp, run = make(
        method("Block: Outer", "    Block: Inner", "        End block", "    Mark: x")
    )
    run.start()
    assert interp.block == "Outer"
    assert run.mark_texts() == ["x"]


def test_block_in_a_watch_waits_for_the_running_block(make: Make) -> None:
    _interp, run = make(
        method(
            "Base: s",
            "Watch: Run Time > 1 s",
            "    Block: W",
            "        Mark: w",
            "        End block",
            "Block: Main",
            "    Mark: main",
            "    3 End block",
            "Mark: done",
        )
    )
    run.start()
    run.run_for(2)
    assert run.mark_texts() == ["main"]
    assert run.log_line("Block: W").state == "running"  # waiting for the lock
    run.run_for(2)
    marks = run.marks()
    assert [m for _, m in marks] == ["main", "done", "w"]  # same scan: main path first
    assert abs(at(marks, "w") - 3) < 0.11


def test_block_in_a_watch_declared_inside_the_running_block_nests(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: Main",
            "    Watch: Run Time > 1 s",
            "        Block: Sub",
            "            Mark: sub",
            "            Wait: 1 s",
            "            End block",
            "    5 End block",
        )
    )
    run.start()
    run.run_for(1.5)
    assert run.mark_texts() == ["sub"] and interp.block == "Sub"
    run.run_for(1)
    assert interp.block == "Main"


def test_block_timeline_starts_at_zero(make: Make) -> None:
    _, run = make(method("Base: s", "3 Mark: a", "Block: B", "    1 Mark: b", "    End block"))
    run.start()
    run.run_for(5)
    marks = run.marks()
    assert abs(at(marks, "b") - 4) < 0.11


# -- End block / End blocks ------------------------------------------------------------------------


def test_end_block_from_a_watch_skips_the_rest_and_cancels_its_watches(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Watch: Level > 1",
            "    End block",
            "Block: B",
            "    Alarm: Level > 100",
            "        Mark: never",
            "    Mark: start",
            "    10 Mark: skipped",
            "Mark: after",
        )
    )
    run.start()
    run.run_for(1)
    run.context.set_value("Level", 2)
    run.run_for(1)
    assert run.mark_texts() == ["start", "after"]
    assert run.log_line("10 Mark: skipped").state == "cancelled"
    assert run.log_line("Alarm: Level > 100").state == "cancelled"
    assert interp.block == ""


def test_end_block_without_a_block_only_warns(make: Make) -> None:
    interp, run = make(method("End block", "Mark: next"))
    run.start()
    assert run.mark_texts() == ["next"]
    assert any(isinstance(e, LogMessage) and e.level == "warning" for e in run.of_type(LogMessage))
    assert interp.state is SystemState.RUNNING


def test_end_blocks_from_injected_code(make: Make) -> None:
    interp, run = make(
        method("Block: A", "    Block: B", "        Mark: b", "    Mark: never", "Mark: done")
    )
    run.start()
    assert interp.block == "B"
    interp.inject("End blocks", run.now, "ann")
    run.step()
    assert run.mark_texts() == ["b", "done"] and interp.block == ""


# -- Watch ---------------------------------------------------------------------------------------


def test_watch_moves_on_at_once_and_fires_once(make: Make) -> None:
    _interp, run = make(method("Watch: Level > 1", "    Mark: w", "Mark: next"))
    run.start()
    assert run.mark_texts() == ["next"]
    run.context.set_value("Level", 5)
    run.run_for(1)
    assert run.mark_texts() == ["next", "w"]
    assert run.log_line("Watch: Level > 1").state == "completed"


def test_watch_body_runs_alongside_the_main_path(make: Make) -> None:
    _, run = make(
        method(
            "Base: s",
            "Watch: Level > 1",
            "    Mark: w1",
            "    Wait: 1 s",
            "    Mark: w2",
            "Mark: m1",
            "3 Mark: m2",
        )
    )
    run.start()
    run.context.set_value("Level", 2)
    run.run_for(4)
    marks = run.marks()
    assert [m for _, m in marks] == ["m1", "w1", "w2", "m2"]
    assert abs(at(marks, "w2") - 1.1) < 0.11


def test_watch_cancel_and_force(make: Make) -> None:
    interp, run = make(method("Watch: Level > 1", "    Mark: a", "Watch: Level > 1", "    Mark: b"))
    run.start()
    first = run.log_line("Watch: Level > 1")
    lines = [line for line in run.log_lines().values() if line.text == "Watch: Level > 1"]
    interp.cancel(lines[0].id, run.now, "ann")
    interp.force(lines[1].id, run.now, "ann")
    run.step()
    assert run.mark_texts() == ["b"]
    states = {line.id: line.state for line in run.log_lines().values()}
    assert states[lines[0].id] == "cancelled" and states[lines[1].id] == "forced"
    assert first is not None


# -- Alarm ---------------------------------------------------------------------------------------


def test_alarm_is_level_triggered_once_per_scan(make: Make) -> None:
    _interp, run = make(method("Alarm: Level > 1", "    Mark: a"))
    run.start()
    run.context.set_value("Level", 2)
    run.run_for(1)  # 10 scans
    assert run.mark_texts() == ["a"] * 10
    run.context.set_value("Level", 0)
    run.run_for(1)
    assert len(run.mark_texts()) == 10
    run.context.set_value("Level", 3)
    run.step()
    assert len(run.mark_texts()) == 11


def test_alarm_rearms_only_after_its_body_finished(make: Make) -> None:
    _, run = make(method("Alarm: Level > 1", "    Mark: a", "    Wait: 1 s"))
    run.start()
    run.context.set_value("Level", 2)
    run.run_for(2.05)
    assert run.mark_texts() == ["a", "a"]


def test_alarm_stays_armed_until_its_block_ends(make: Make) -> None:
    _, run = make(
        method("Base: s", "Block: B", "    Alarm: Level > 1", "        Mark: a", "    2 End block")
    )
    run.start()
    run.context.set_value("Level", 2)
    run.run_for(3)
    # Fires in the scans at 0.1 .. 2.0 s; in the 2 s scan the main path runs first and ends the
    # block, and with it the body the alarm had just begun.
    assert len(run.mark_texts()) == 19
    assert run.log_line("Alarm: Level > 1").state == "cancelled"


def test_cancelled_alarm_does_not_fire_again(make: Make) -> None:
    interp, run = make(method("Alarm: Level > 1", "    Mark: a"))
    run.start()
    run.context.set_value("Level", 2)
    run.step()
    interp.cancel(run.log_line("Alarm: Level > 1").id, run.now, "ann")
    run.run_for(1)
    assert run.mark_texts() == ["a"]


# -- Macro / Call macro -----------------------------------------------------------------------------


def test_macro_redefinition_replaces_it(make: Make) -> None:
    _, run = make(
        method(
            "Macro: M",
            "    Mark: one",
            "Call macro: M",
            "Macro: M",
            "    Mark: two",
            "Call macro: M",
        )
    )
    run.start()
    assert run.mark_texts() == ["one", "two"]


def test_macro_runs_on_the_callers_timeline(make: Make) -> None:
    _, run = make(
        method(
            "Base: s",
            "Macro: M",
            "    2 Mark: m",
            "Block: B",
            "    Mark: b",
            "    Call macro: M",
            "    End block",
            "Call macro: M",
            "Mark: end",
        )
    )
    run.start()
    run.run_for(3)
    marks = run.marks()
    # in the block: 2 s on the block timeline; then at top level 2 s is already past
    assert [m for _, m in marks] == ["b", "m", "m", "end"]
    assert abs(marks[1][0] - 2) < 0.11 and marks[2][0] == marks[1][0]


def test_macro_calling_another_macro(make: Make) -> None:
    _, run = make(
        method(
            "Macro: A",
            "    Mark: a",
            "Macro: B",
            "    Call macro: A",
            "    Mark: b",
            "Call macro: B",
        )
    )
    run.start()
    assert run.mark_texts() == ["a", "b"]


def test_calling_a_macro_not_yet_defined_fails_and_lists_defined(make: Make) -> None:
    interp, run = make(
        method(
            "Macro: Other",
            "    Mark: o",
            "Call macro: Later",
            "Macro: Later",
            "    Mark: l",
            "Call macro: Other",
        )
    )
    run.start()
    failed = run.log_line("Call macro: Later")
    assert failed.state == "failed" and "defined: Other" in (failed.message or "")
    assert interp.state is SystemState.PAUSED and interp.method_status == "Error"


def test_recursive_macro_is_refused_at_start(make: Make) -> None:
    from engine.lang.interpreter import RunControlError

    interp, run = make(method("Macro: A", "    Call macro: A", "Call macro: A"))
    with pytest.raises(RunControlError, match="calls itself"):
        run.start()
    assert interp.state is SystemState.STOPPED


# -- system tags (section 11) the interpreter owns, as conditions see them -----------------------


def test_conditions_see_system_tags_changed_in_the_same_scan(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Watch: Block = Fill",
            "    Mark: block seen",
            "Watch: Batch Name = B-7",
            "    Mark: batch seen",
            "Watch: Block Time > 1 s",
            "    Mark: block time",
            "Watch: Scope Time >= 2 s",
            "    Mark: scope time",
            "Watch: Process Time >= 2 s",
            "    Mark: process time",
            "Watch: Method Status = OK",
            "    Mark: ok",
            "Watch: System State = Running",
            "    Mark: running",
            "Watch: Base = s",
            "    Mark: base",
            "Batch: B-7",
            "Block: Fill",
            "    3 End block",
        )
    )
    run.start()
    run.run_for(0.1)
    assert set(run.mark_texts()) == {"block seen", "batch seen", "ok", "running", "base"}
    assert interp.run_id == "run-1"
    run.run_for(2.1)
    assert {"block time", "scope time", "process time"} <= set(run.mark_texts())
