"""pcode.md section 4: a Watch or Alarm body is part of the block it was declared in.

`End block` / `End blocks` that end that block end the rest of the body as well, wherever the
End line stands (in the body itself, in a block the body entered, in another path). A body
declared outside the ended block goes on.
"""

from __future__ import annotations

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


def test_issue_example_with_never1_inside_the_inner_block(make: Make) -> None:
    lines = [*ISSUE_EXAMPLE]
    lines[5] = "            Mark: never1"  # after End blocks in WIn
    interp, run = make(method("Base: s", *lines))
    run.start()
    run.run_for(5)
    assert run.mark_texts() == ["w", "after"] and interp.block == ""
    settled(interp, run, ["w", "after"])


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


@pytest.mark.parametrize("end", ["End block", "End blocks"])
def test_end_line_in_the_body_of_a_watch_declared_in_the_block(make: Make, end: str) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: B",
            "    Watch: Block Time > 2 s",
            "        Mark: w",
            f"        {end}",
            "        Mark: never",
            "    Mark: in B",
            "Mark: after",
        )
    )
    run.start()
    run.run_for(3)
    assert run.mark_texts() == ["in B", "w", "after"] and interp.block == ""
    assert abs(at(run, "after") - 2.1) < 0.11
    assert run.log_line(end).state == "completed"
    settled(interp, run, ["in B", "w", "after"])


@pytest.mark.parametrize("end", ["End block", "End blocks"])
def test_a_watch_declared_at_top_level_goes_on(make: Make, end: str) -> None:
    interp, run = make(
        method(
            "Base: s",
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
        )
    )
    run.start()
    run.run_for(5)
    if end == "End block":  # ends Inner only: Outer goes on and waits after its last line
        expected = ["inner", "w", "body goes on", "outer", "later in the body"]
        assert interp.block == "Outer"
    else:
        expected = ["inner", "w", "body goes on", "after", "later in the body"]
        assert interp.block == ""
    assert run.mark_texts() == expected
    assert abs(at(run, "later in the body") - 3.1) < 0.11
    settled(interp, run, expected)


def test_a_watch_declared_at_top_level_with_its_own_block(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Watch: Run Time > 2 s",
            "    Block: WIn",
            "        Mark: w",
            "        End blocks",
            "        Mark: skipped",
            "    Mark: body goes on",
            "Mark: main",
        )
    )
    run.start()
    run.run_for(3)
    assert interp.block == ""
    settled(interp, run, ["main", "w", "body goes on"])


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


def test_end_block_from_a_watch_declared_in_outer_ends_only_the_inner_block(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: Outer",
            "    Watch: Run Time > 2 s",
            "        End block",
            "        Mark: body goes on",
            "    Block: Inner",
            "        Mark: inner",
            "    Mark: outer goes on",
            "Mark: after",
        )
    )
    run.start()
    run.run_for(3)
    assert run.mark_texts() == ["inner", "body goes on", "outer goes on"]
    assert abs(at(run, "outer goes on") - 2.2) < 0.11  # the scan after the watch ended Inner
    assert interp.block == "Outer"
    settled(interp, run, ["inner", "body goes on", "outer goes on"])


def test_end_blocks_from_a_watch_declared_in_outer_ends_both_and_the_body(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
            "Block: Outer",
            "    Watch: Run Time > 2 s",
            "        End blocks",
            "        Mark: never",
            "    Block: Inner",
            "        Mark: inner",
            "    Mark: never either",
            "Mark: after",
        )
    )
    run.start()
    run.run_for(3)
    assert run.mark_texts() == ["inner", "after"] and interp.block == ""
    settled(interp, run, ["inner", "after"])


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


def test_a_waiting_body_is_cancelled_with_its_block(make: Make) -> None:
    interp, run = make(
        method(
            "Base: s",
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
        )
    )
    run.start()
    run.run_for(3)
    assert run.mark_texts() == ["w", "after"] and interp.block == ""
    assert run.log_line("Wait: 10 s").state == "cancelled"
    assert run.log_line("5 Mark: never either").state == "cancelled"
    settled(interp, run, ["w", "after"])


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
