"""pcode.md section 4: a Watch or Alarm body is part of the block it was declared in.

`End block` / `End blocks` that end that block end the rest of the body as well, wherever the
End line stands (in the body itself, in a block the body entered, in another path). A body
declared outside the ended block goes on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from engine.lang.api import SystemState
from engine.lang.interpreter import Interpreter
from engine.lang.testing import Runner
from tests.lang.conftest import Make, method


def at(run: Runner, text: str) -> float:
    return next(t for t, m in run.marks() if m == text)


def texts(run: Runner) -> set[str]:
    return {line.text for line in run.log_lines().values()}


def settled(interp: Interpreter, run: Runner, marks: list[str]) -> None:
    """Nothing else happens later: no body is left running in the background."""
    run.run_for(120)
    assert run.mark_texts() == marks
    assert interp.state is SystemState.RUNNING
    assert interp.method_status == "OK"


ISSUE_EXAMPLE = [
    "Block: Outer",
    "    Watch: Block Time > 2 s",
    "        Block: WIn",
    "            Mark: w",
    "            1 End blocks",
    "        Mark: never1",
    "        Mark: never2",
    "Mark: after",
]


def test_issue_example_end_blocks_ends_the_rest_of_the_watch_body(make: Make) -> None:
    interp, run = make(method(*ISSUE_EXAMPLE))
    run.start()
    run.run_for(30)
    assert run.mark_texts() == ["w"] and interp.block == "WIn"
    run.run_for(40)  # `1 End blocks` is 1 min on WIn's timeline, which began at ~2.1 s
    assert run.mark_texts() == ["w", "after"]
    assert abs(at(run, "w") - 2.1) < 0.11 and abs(at(run, "after") - 62.1) < 0.11
    assert interp.block == ""
    for text in ("Block: Outer", "Block: WIn", "1 End blocks", "Watch: Block Time > 2 s"):
        assert run.log_line(text).state == "completed"
    assert not {"Mark: never1", "Mark: never2"} & texts(run)
    settled(interp, run, ["w", "after"])


@dataclass(frozen=True)
class Case:
    """A method (after `Base: s`) run from Start for `seconds`: the marks it made by then, the
    block still running, lines cancelled or completed, and when some marks were made; then
    nothing more happens (settled)."""

    lines: tuple[str, ...]
    marks: tuple[str, ...]
    block: str = ""
    seconds: float = 3
    cancelled: tuple[str, ...] = ()
    completed: tuple[str, ...] = ()
    times: tuple[tuple[str, float], ...] = ()


def _end_in_watch_body(end: str) -> Case:
    return Case(
        (
            "Block: B",
            "    Watch: Block Time > 2 s",
            "        Mark: w",
            f"        {end}",
            "        Mark: never",
            "    Mark: in B",
            "Mark: after",
        ),
        ("in B", "w", "after"),
        completed=(end,),
        times=(("after", 2.1),),
    )


def _top_level_watch(end: str, marks: tuple[str, ...], block: str) -> Case:
    return Case(
        (
            "Watch: Run Time > 2 s",
            "    Mark: w",
            f"    {end}",
            "    Mark: body goes on",
            "    1 Mark: later in the body",
            "Block: Outer",
            "    Block: Inner",
            "        Mark: inner",
            "    Mark: outer",
            "Mark: after",
        ),
        marks,
        block,
        seconds=5,
        times=(("later in the body", 3.1),),
    )


CASES = [
    pytest.param(
        Case(
            (*ISSUE_EXAMPLE[:5], "            Mark: never1", *ISSUE_EXAMPLE[6:]),
            ("w", "after"),
            seconds=5,
        ),
        id="issue example with never1 after End blocks in the inner block",
    ),
    pytest.param(
        _end_in_watch_body("End block"), id="End block in the body of a watch declared in it"
    ),
    pytest.param(
        _end_in_watch_body("End blocks"), id="End blocks in the body of a watch declared in it"
    ),
    # End block ends Inner only: Outer goes on and waits after its last line.
    pytest.param(
        _top_level_watch(
            "End block", ("inner", "w", "body goes on", "outer", "later in the body"), "Outer"
        ),
        id="a watch declared at top level goes on after End block",
    ),
    pytest.param(
        _top_level_watch(
            "End blocks", ("inner", "w", "body goes on", "after", "later in the body"), ""
        ),
        id="a watch declared at top level goes on after End blocks",
    ),
    pytest.param(
        Case(
            (
                "Watch: Run Time > 2 s",
                "    Block: WIn",
                "        Mark: w",
                "        End blocks",
                "        Mark: skipped",
                "    Mark: body goes on",
                "Mark: main",
            ),
            ("main", "w", "body goes on"),
        ),
        id="a watch declared at top level with its own block goes on",
    ),
    pytest.param(
        Case(
            (
                "Block: Outer",
                "    Watch: Run Time > 2 s",
                "        End block",
                "        Mark: body goes on",
                "    Block: Inner",
                "        Mark: inner",
                "    Mark: outer goes on",
                "Mark: after",
            ),
            ("inner", "body goes on", "outer goes on"),
            "Outer",
            times=(("outer goes on", 2.2),),  # the scan after the watch ended Inner
        ),
        id="End block from a watch declared in Outer ends only Inner",
    ),
    pytest.param(
        Case(
            (
                "Block: Outer",
                "    Watch: Run Time > 2 s",
                "        End blocks",
                "        Mark: never",
                "    Block: Inner",
                "        Mark: inner",
                "    Mark: never either",
                "Mark: after",
            ),
            ("inner", "after"),
        ),
        id="End blocks from a watch declared in Outer ends both and the body",
    ),
    pytest.param(
        Case(
            (
                "Block: B",
                "    Watch: Block Time > 1 s",
                "        Mark: w",
                "        Wait: 10 s",
                "        Mark: never",
                "    Watch: Block Time > 1 s",
                "        5 Mark: never either",
                "    Watch: Block Time > 2 s",
                "        End block",
                "Mark: after",
            ),
            ("w", "after"),
            cancelled=("Wait: 10 s", "5 Mark: never either"),
        ),
        id="a waiting body is cancelled with its block",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_a_body_ends_with_the_block_it_was_declared_in(make: Make, case: Case) -> None:
    interp, run = make(method("Base: s", *case.lines))
    run.start()
    run.run_for(case.seconds)
    assert run.mark_texts() == list(case.marks)
    assert interp.block == case.block
    for mark, t in case.times:
        assert abs(at(run, mark) - t) < 0.11  # run time of the simulated clock, not wall time
    for text in case.cancelled:
        assert run.log_line(text).state == "cancelled"
    for text in case.completed:
        assert run.log_line(text).state == "completed"
    settled(interp, run, list(case.marks))


def test_end_block_in_a_block_the_body_entered_ends_only_that_block(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: Outer",
            "    Watch: Block Time > 2 s",
            "        Block: WIn",
            "            Mark: w",
            "            1 End block",
            "            Mark: skipped",
            "        Mark: body goes on",
            "Mark: after",
        )
    )
    run.start()
    run.run_for(5)
    assert run.mark_texts() == ["w", "body goes on"]
    assert interp.block == "Outer"  # Outer waits after its last line until it is ended
    interp.inject("End block", run.now, "ann")
    run.step()
    settled(interp, run, ["w", "body goes on", "after"])


def test_nested_blocks_end_block_ends_the_body_of_a_watch_declared_in_the_inner(
    make: Make,
) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: Outer",
            "    Block: Inner",
            "        Watch: Block Time > 1 s",
            "            End block",
            "            Mark: never",
            "    Mark: outer goes on",
            "    5 End block",
            "Mark: after",
        )
    )
    run.start()
    run.run_for(1.5)
    assert run.mark_texts() == ["outer goes on"] and interp.block == "Outer"
    run.run_for(5)
    assert run.mark_texts() == ["outer goes on", "after"]
    settled(interp, run, ["outer goes on", "after"])


@pytest.mark.parametrize("end", ["End block", "End blocks"])
def test_alarm_declared_in_the_block_ends_its_body_and_disarms(make: Make, end: str) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: B",
            "    Alarm: Level > 1",
            "        Mark: a",
            f"        {end}",
            "        Mark: never",
            "Mark: after",
        )
    )
    run.start()
    run.step()
    run.context.set_value("Level", 2)
    run.run_for(1)
    assert run.mark_texts() == ["a", "after"] and interp.block == ""
    assert run.log_line("Alarm: Level > 1").state == "cancelled"
    settled(interp, run, ["a", "after"])


def test_injected_end_block_ends_a_running_body(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: B",
            "    Watch: Block Time > 1 s",
            "        Mark: w",
            "        3 Mark: never",
            "Mark: after",
        )
    )
    run.start()
    run.run_for(2)
    interp.inject("End block", run.now, "ann")
    run.step()
    assert run.log_line("3 Mark: never").state == "cancelled"
    settled(interp, run, ["w", "after"])
