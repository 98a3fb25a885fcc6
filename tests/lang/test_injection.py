"""pcode.md section 8: injected code."""

from __future__ import annotations

import pytest

from engine.lang.api import SystemState
from engine.lang.interpreter import InjectionError
from engine.lang.runlog import LogMessage
from engine.lang.testing import FakeContext
from tests.lang.conftest import Make, method


def test_injected_commands_act_at_once_when_stopped(make: Make, ctx: FakeContext) -> None:
    interp, run = make("Mark: method")
    interp.inject("PU01: 50 %\nMark: manual", run.now, "ann")
    run.collect()
    assert [(h.name, h.argument) for h in ctx.started] == [("PU01", "50 %")]
    line = run.log_line("PU01: 50 %")
    assert line.user == "ann" and line.line_id is None
    assert run.mark_texts() == ["manual"] and interp.state is SystemState.STOPPED


def test_injected_code_runs_alongside_the_method(make: Make) -> None:
    interp, run = make(method("Base: s", "Mark: a", "3 Mark: b"))
    run.start()
    run.run_for(1)
    interp.inject("Base: s\nMark: x\n1 Mark: y", run.now, "bob")
    run.run_for(3)
    marks = dict((m, t) for t, m in run.marks())
    assert abs(marks["x"] - 1) < 0.11 and abs(marks["y"] - 2) < 0.11 and abs(marks["b"] - 3) < 0.11
    assert run.log_line("1 Mark: y").user == "bob"


def test_injected_code_with_errors_is_refused(make: Make) -> None:
    interp, run = make("Mark: a")
    with pytest.raises(InjectionError) as raised:
        interp.inject("Mrak: x\nMark: ok", run.now, "ann")
    assert raised.value.findings[0].code == "unknown-instruction"
    assert "Did you mean 'Mark'" in str(raised.value)
    run.collect()
    assert run.mark_texts() == []


def test_injected_code_may_call_running_macros(make: Make) -> None:
    interp, run = make(method("Macro: M", "    Mark: m"))
    run.start()
    interp.inject("Call macro: M", run.now, "ann")
    run.collect()
    assert run.mark_texts() == ["m"]


def test_injected_code_runs_while_paused(make: Make) -> None:
    interp, run = make("Pause")
    run.start()
    interp.inject("Mark: manual\nUnpause", run.now, "ann")
    run.collect()
    assert run.mark_texts() == ["manual"] and interp.state is SystemState.RUNNING


def test_injected_run_control_without_a_run_fails_its_line(make: Make) -> None:
    interp, run = make("Mark: a")
    interp.inject("Pause", run.now, "ann")
    run.collect()
    assert run.log_line("Pause").state == "failed"
    assert any(e.level == "error" for e in run.of_type(LogMessage))
    assert interp.state is SystemState.STOPPED


def test_stop_ends_injected_paths(make: Make) -> None:
    interp, run = make("Mark: a")
    run.start()
    interp.inject("Wait: 10 s\nMark: late", run.now, "ann")
    interp.stop(run.now, "ann")
    run.run_for(11)
    assert run.mark_texts() == ["a"]


def test_injected_watch_works_in_manual_operation(make: Make, ctx: FakeContext) -> None:
    interp, run = make("Mark: a")
    interp.inject("Watch: TT01 > 80 degC\n    PU01: 0 %\n    Mark: tripped", run.now, "ann")
    run.run_for(1)
    assert run.mark_texts() == []
    ctx.set_value("TT01", 85.0)
    run.step()
    assert run.mark_texts() == ["tripped"] and ctx.started[-1].argument == "0 %"
    assert interp.state is SystemState.STOPPED
