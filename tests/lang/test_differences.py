"""pcode.md section 12: where Setpoint deliberately differs from Open Pectus."""

from __future__ import annotations

import pytest

from engine.lang.api import SystemState
from engine.lang.core import MAX_INSTRUCTIONS_PER_SCAN
from engine.lang.interpreter import RunControlError
from engine.lang.runlog import LogMessage
from tests.lang.conftest import Make, method


def test_1_errors_block_start_warnings_do_not(make: Make) -> None:
    interp, run = make(method("Mark: a", "Wiat: 2 s"))
    with pytest.raises(RunControlError, match="Unknown instruction 'Wiat'"):
        run.start()
    interp.set_method(method("Block: never ended", "    Mark: a"))
    run.start()
    assert interp.state is SystemState.RUNNING


def test_2_instructions_that_complete_at_once_share_a_scan(make: Make) -> None:
    _, run = make(method(*[f"Mark: {i}" for i in range(50)]))
    run.start()
    assert len(run.mark_texts()) == 50  # all during the Start scan


def test_2_at_most_1000_instructions_per_path_per_scan(make: Make) -> None:
    _, run = make(method(*[f"Mark: {i}" for i in range(2500)]))
    run.start()
    assert len(run.mark_texts()) == MAX_INSTRUCTIONS_PER_SCAN
    run.step()
    assert len(run.mark_texts()) == 2 * MAX_INSTRUCTIONS_PER_SCAN
    run.step()
    assert len(run.mark_texts()) == 2500


def test_2_an_alarm_that_stays_true_fires_once_per_scan(make: Make) -> None:
    _, run = make(method("Alarm: Level < 1", "    Mark: a"))
    run.start()
    run.step()
    assert run.mark_texts() == ["a"]  # once per scan, not 1000 times


def test_3_error_pause_is_a_pause(make: Make) -> None:
    interp, run = make("Boom")
    run.start()
    assert interp.state is SystemState.PAUSED and interp.method_status == "Error"


def test_4_timelines_stand_still_in_hold_and_pause(make: Make) -> None:
    interp, run = make(method("Base: s", "Block: B", "    10 End block"))
    run.start()
    run.run_for(2)
    interp.hold(run.now, "ann")
    run.run_for(3)
    assert interp.block_time == pytest.approx(2) and interp.scope_time == pytest.approx(2)
    interp.unhold(run.now, "ann")
    interp.pause(run.now, "ann")
    run.run_for(3)
    assert interp.block_time == pytest.approx(2) and interp.process_time == pytest.approx(2)
    assert interp.run_time == pytest.approx(8)
    interp.unpause(run.now, "ann")
    run.run_for(8.05)
    assert interp.block == ""
    assert interp.run_time == pytest.approx(16.1)


def test_6_batch_name(make: Make) -> None:
    interp, run = make("Batch: B-1")
    run.start()
    assert interp.batch_name == "B-1"


def test_7_info_reaches_the_log(make: Make) -> None:
    _, run = make("Info: hello")
    run.start()
    assert run.of_type(LogMessage) == [LogMessage("info", "hello")]


def test_8_restart_restarts_run_time(make: Make) -> None:
    interp, run = make(method("Base: s", "3 Restart"))
    run.start()
    run.run_for(4)
    assert interp.run_time == pytest.approx(1) and interp.process_time == pytest.approx(1)


def test_9_thresholds_on_the_timeline_of_their_own_path(make: Make) -> None:
    _, run = make(
        method(
            "Base: s",
            "Watch: Run Time > 2 s",
            "    1 Mark: watch",  # 1 s after the watch fired, not on the block's timeline
            "3 Block: B",
            "    Mark: block",
            "    5 End block",
        )
    )
    run.start()
    run.run_for(4)
    marks = dict((m, t) for t, m in run.marks())
    assert abs(marks["watch"] - 3.1) < 0.11 and abs(marks["block"] - 3) < 0.11
