"""Fix and resume (pcode.md "Fixing a failed line"): a failed line is fixed, then resumed from or
skipped; the run log keeps the failed attempt, the edit and the retry."""

from __future__ import annotations

import pytest

from engine.lang.api import LineState, SystemState
from engine.lang.interpreter import Interpreter, LineActionError
from engine.lang.runlog import RunLogLine
from engine.lang.testing import FakeContext, Runner
from tests.lang.conftest import Make, method


def started(make: Make, *lines: str, scans: int = 3) -> tuple[Interpreter, Runner]:
    interp, run = make(method(*lines))
    run.start()
    for _ in range(scans):
        run.step()
    return interp, run


def edit(interp: Interpreter, run: Runner, *lines: str) -> None:
    interp.set_method(method(*lines), user="ann", now=run.now)
    run.collect()


def state(interp: Interpreter) -> SystemState:
    """Read afresh each time (mypy would keep an `assert interp.state is ...` narrowed)."""
    return interp.state


def texts(run: Runner) -> list[tuple[str, str, str | None]]:
    return [(line.text, line.state.value, line.user) for line in run.log_lines().values()]


def by_text(run: Runner, text: str) -> list[RunLogLine]:
    return [line for line in run.log_lines().values() if line.text == text]


def test_a_command_refused_at_once_is_fixed_and_resumed(make: Make) -> None:
    interp, run = started(make, "Mark: a", "Boom", "Mark: c")
    failed = run.log_line("Boom")
    assert failed.state is LineState.FAILED and state(interp) is SystemState.PAUSED
    assert interp.failures == [failed.id] and run.mark_texts() == ["a"]
    edit(interp, run, "Mark: a", "Reset", "Mark: c")
    interp.resume_failed(failed.id, run.now, "ann")
    run.collect()
    assert state(interp) is SystemState.RUNNING and interp.method_status == "OK"
    run.step()
    run.step()
    retry = run.log_line("Reset")
    assert retry.state is LineState.COMPLETED and retry.retry_of == failed.id
    assert retry.line_id == failed.line_id
    assert run.mark_texts() == ["a", "c"]
    assert texts(run)[:6] == [
        ("Start", "completed", None),
        ("Mark: a", "completed", None),
        ("Boom", "failed", None),
        ("Method version 2", "completed", "ann"),
        ("Resume from line 2 (method version 2)", "completed", "ann"),
        ("Reset", "completed", None),
    ]
    assert interp.method_state.failed == frozenset() and interp.failures == []


def test_skipping_a_line_that_failed_at_once(make: Make, ctx: FakeContext) -> None:
    interp, run = started(make, "Mark: a", "Boom", "Mark: c")
    failed = run.log_line("Boom")
    interp.resume_failed(failed.id, run.now, "bob", skip=True)
    run.step()
    run.step()
    assert run.mark_texts() == ["a", "c"]
    assert len(by_text(run, "Boom")) == 1 and ctx.started == []
    assert run.log_line("Skip line 2 (method version 1)").user == "bob"
    state = interp.method_state
    assert failed.line_id in state.completed and failed.line_id not in state.failed


def test_a_command_that_failed_mid_way_is_started_again_on_resume(
    make: Make, ctx: FakeContext
) -> None:
    interp, run = started(make, "Mark: a", "Fail", "Mark: c")
    failed = run.log_line("Fail")
    assert failed.state is LineState.FAILED and failed.message == "valve stuck"
    assert run.mark_texts() == ["a", "c"]  # its path had moved on
    assert state(interp) is SystemState.PAUSED
    edit(interp, run, "Mark: a", "Slow", "Mark: c")
    interp.resume_failed(failed.id, run.now, "ann")
    run.collect()
    retry = run.log_line("Slow")
    assert retry.retry_of == failed.id and retry.state is LineState.RUNNING
    assert [h.name for h in ctx.started] == ["Fail", "Slow"]
    run.run_for(1.0)
    assert run.log_line("Slow").state is LineState.COMPLETED
    assert run.mark_texts() == ["a", "c"]  # nothing after it ran twice


def test_resumed_without_a_fix_it_fails_again_and_waits_again(make: Make) -> None:
    interp, run = started(make, "Mark: a", "Fail", "Mark: c")
    first = run.log_line("Fail")
    interp.resume_failed(first.id, run.now, "ann")
    run.step()
    run.step()
    run.step()
    attempts = by_text(run, "Fail")
    assert [a.state for a in attempts] == [LineState.FAILED, LineState.FAILED]
    assert attempts[1].retry_of == first.id
    assert state(interp) is SystemState.PAUSED and interp.failures == [attempts[1].id]
    interp.resume_failed(attempts[1].id, run.now, "ann", skip=True)
    assert state(interp) is SystemState.RUNNING


def test_the_run_continues_when_every_failed_line_is_settled(make: Make) -> None:
    interp, run = started(make, "Fail", "Watch: Level > 1", "    Boom", "Mark: end")
    late = run.log_line("Fail")
    run.context.set_value("Level", 2.0)
    interp.unpause(run.now, "ann")
    run.step()
    boom = run.log_line("Boom")
    assert boom.state is LineState.FAILED and state(interp) is SystemState.PAUSED
    late_again = by_text(run, "Fail")
    assert late_again == [late]  # a plain Unpause does not restart a mid-way failure
    interp.resume_failed(boom.id, run.now, "ann", skip=True)
    assert state(interp) is SystemState.RUNNING


def test_two_failures_need_a_choice_each(make: Make) -> None:
    interp, run = make(method("Watch: Level > 1", "    Boom", "Fail"))
    run.context.set_value("Level", 2.0)
    run.start()
    run.step()  # the watch fires, Boom fails at once
    run.step()  # Fail fails mid-way
    logged = [line.id for line in run.log_lines().values() if line.state is LineState.FAILED]
    failed = interp.failures  # Boom (line 2) first: it failed first
    assert sorted(failed) == sorted(logged) and len(failed) == 2
    interp.resume_failed(failed[0], run.now, "ann", skip=True)
    assert state(interp) is SystemState.PAUSED
    interp.resume_failed(failed[1], run.now, "ann")
    run.collect()
    assert state(interp) is SystemState.RUNNING
    assert [line.text for line in run.log_lines().values()][-3:] == [
        "Skip line 2 (method version 1)",
        "Resume from line 3 (method version 1)",
        "Fail",
    ]


def test_refusals(make: Make) -> None:
    interp, run = started(make, "Mark: a", "Fail", "Boom", "Mark: c")
    late = run.log_line("Fail")
    mark = run.log_line("Mark: a")
    with pytest.raises(LineActionError, match="No run-log line '99' in this run"):
        interp.resume_failed("99", run.now, "ann")
    with pytest.raises(LineActionError, match="is not a failed method line waiting"):
        interp.resume_failed(mark.id, run.now, "ann")
    edit(interp, run, "Mark: a", "Wait: 1 s", "Boom", "Mark: c")
    with pytest.raises(LineActionError, match="Line 2 'Wait: 1 s' is not a UOD command"):
        interp.resume_failed(late.id, run.now, "ann")
    interp.resume_failed(late.id, run.now, "ann", skip=True)
    with pytest.raises(LineActionError, match="has already been skipped"):
        interp.resume_failed(late.id, run.now, "ann")
    run.collect()
    assert run.log_line("Skip line 2 (method version 2)").user == "ann"
    assert state(interp) is SystemState.PAUSED  # Boom is still waiting


def test_a_plain_unpause_settles_the_failures(make: Make) -> None:
    interp, run = started(make, "Mark: a", "Boom")
    failed = run.log_line("Boom")
    interp.unpause(run.now, "ann")
    run.collect()
    with pytest.raises(LineActionError, match="is not a failed method line waiting"):
        interp.resume_failed(failed.id, run.now, "ann")


def test_stop_forgets_the_failures(make: Make) -> None:
    interp, run = started(make, "Fail")
    failed = run.log_line("Fail")
    interp.stop(run.now, "ann")
    with pytest.raises(LineActionError, match="is not a failed method line waiting"):
        interp.resume_failed(failed.id, run.now, "ann")


def test_an_edit_during_a_run_reports_the_line_states_of_the_new_version(make: Make) -> None:
    interp, run = started(make, "Mark: a", "Boom", "Mark: c")
    interp.set_method(method("Mark: a", "Reset", "Mark: c"), user="ann", now=run.now)
    kinds = [type(e).__name__ for e in interp.drain_events()]
    assert kinds[:2] == ["MethodChanged", "MethodStateChanged"]
    assert interp.method_state.failed == {interp.method.lines[1].id}
