"""pcode.md section 13: each worked example is its own test (scan every 0.1 s)."""

from __future__ import annotations

import pytest

from engine.lang.analyzer import analyze
from engine.lang.api import SystemState
from engine.lang.runlog import StateChanged
from engine.lang.testing import FakeContext, interpreter_for
from tests.lang.conftest import Make, method

SCAN = 0.1


def near(actual: float, expected: float) -> bool:
    """'≈' in section 13: within one scan."""
    return abs(actual - expected) <= SCAN + 1e-9


def test_1_order(make: Make) -> None:
    _, run = make(method("Mark: A", "Block: B1", "    Mark: B", "    End block", "Mark: C"))
    run.start()
    run.run_for(1)
    assert run.mark_texts() == ["A", "B", "C"]


def test_2_thresholds(make: Make, ctx: FakeContext) -> None:
    text = method("Base: s", "Mark: A", "2 Mark: B", "1 Mark: C")
    _, run = make(text)
    run.start()
    run.run_for(4)
    (ta, a), (tb, b), (tc, c) = run.marks()
    assert (a, b, c) == ("A", "B", "C")
    assert near(ta, 0) and near(tb, 2) and tc == tb
    warnings = [f for f in analyze(text, ctx) if f.code == "threshold-order"]
    assert len(warnings) == 1 and warnings[0].line == 4 and warnings[0].severity == "warning"


def test_3_watch(make: Make) -> None:
    _, run = make(method("Base: s", "Watch: Run Time > 3 s", "    Mark: W", "Mark: A", "5 Mark: B"))
    run.start()
    run.run_for(6)
    marks = dict((text, t) for t, text in run.marks())
    assert list(marks) == ["A", "W", "B"]
    assert near(marks["A"], 0) and near(marks["W"], 3) and near(marks["B"], 5)


def test_4_alarm(make: Make) -> None:
    interp, run = make(method("Alarm: Run Counter < 3", "    Increment run counter", "    Mark: X"))
    run.start()
    run.run_for(3)
    assert run.mark_texts() == ["X", "X", "X"]
    assert interp.run_counter == 3
    alarm = run.log_line("Alarm: Run Counter < 3")
    assert alarm.state == "running" and alarm.cancellable


def test_5_macro(make: Make) -> None:
    _, run = make(method("Macro: M", "    Mark: m", "Call macro: M", "Call macro: M"))
    run.start()
    run.run_for(1)
    assert run.mark_texts() == ["m", "m"]


def test_6_block_timeline(make: Make) -> None:
    _, run = make(method("Base: s", "Block: A", "    Mark: a", "    2 End block", "Mark: after"))
    run.start()
    run.run_for(4)
    marks = dict((text, t) for t, text in run.marks())
    assert near(marks["after"], 2)


def test_7_end_blocks(make: Make) -> None:
    interp, run = make(
        method(
            "Block: Outer",
            "    Block: Inner",
            "        Mark: i",
            "        End blocks",
            "    Mark: never",
            "Mark: done",
        )
    )
    run.start()
    run.run_for(1)
    assert run.mark_texts() == ["i", "done"]
    assert interp.block == ""


def test_8_watch_dies_with_its_block(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: B",
            "    Watch: Run Time > 10 s",
            "        Mark: never",
            "    1 End block",
            "Mark: after",
            "20 Stop",
        )
    )
    run.start()
    run.run_for(25)
    marks = run.marks()
    assert [m for _, m in marks] == ["after"] and near(marks[0][0], 1)
    stops = [t for t, e in run.events if isinstance(e, StateChanged) and e.new == "Stopped"]
    assert len(stops) == 1 and near(stops[0], 20)
    assert interp.state is SystemState.STOPPED
    assert run.log_line("Watch: Run Time > 10 s").state == "cancelled"


def test_9_wait(make: Make) -> None:
    _, run = make(method("Mark: a", "Wait: 2 s", "Mark: b"))
    run.start()
    run.run_for(3)
    marks = dict((text, t) for t, text in run.marks())
    assert near(marks["b"], 2)


def test_10_pause_with_duration(make: Make) -> None:
    interp, run = make(method("Base: s", "Mark: a", "Pause: 2 s", "Mark: b"))
    run.start()
    states: list[tuple[float, SystemState]] = []
    for _ in range(30):
        run.step()
        states.append((run.now, interp.state))
    marks = dict((text, t) for t, text in run.marks())
    assert marks["b"] >= 2.0 and near(marks["b"], 2)
    assert all(s is SystemState.PAUSED for t, s in states if t < 2.0 - 1e-9)
    changes = [(e.old, e.new) for _, e in run.events if isinstance(e, StateChanged)]
    # the engine applies safe outputs on entering Paused and restores them on leaving it
    assert changes == [
        ("Stopped", "Running"),
        ("Running", "Paused"),
        ("Paused", "Running"),
    ]
    assert run.log_line("Pause: 2 s").state == "completed"


def test_11_stop(make: Make) -> None:
    interp, run = make(method("Mark: a", "Stop", "Mark: b"))
    run.start()
    run.run_for(1)
    assert run.mark_texts() == ["a"]
    assert interp.state is SystemState.STOPPED
    assert interp.run_id == ""


@pytest.mark.parametrize("flow_unit", ["L", "mL"])
def test_12_volume_base(ureg: object, flow_unit: str) -> None:
    ctx = FakeContext(ureg=ureg)  # type: ignore[arg-type]
    per_second = 60 / 3600 if flow_unit == "L" else 60_000 / 3600  # a pump at 60 L/h
    ctx.add_totalizer("Accumulated Volume", flow_unit, per_second, ["L", "mL"])
    _, _, run = interpreter_for(
        method("Base: L", "Block: Fill", "    1 End block", "Mark: full"), ctx
    )
    run.start()
    run.run_for(70)
    marks = dict((text, t) for t, text in run.marks())
    assert near(marks["full"], 60)
