"""Anonymous blocks (`Block:` with no name, as Open Pectus methods write them): pcode.md section 4.

Each behaviour is checked against the same method with a named block, so "exactly like a named
block" is what the tests assert, not a restatement of it.
"""

from __future__ import annotations

import pytest

from engine.lang.analyzer import analyze
from engine.lang.api import SystemState
from engine.lang.parser import parse
from engine.lang.testing import FakeContext
from tests.lang.conftest import Make, method


@pytest.mark.parametrize("header", ["Block:", "Block:   ", "Block :"])
def test_block_without_a_name_parses(header: str) -> None:
    parsed = parse(method(header, "    Mark: a", "    End block"))
    assert parsed.problems == []
    block = parsed.roots[0]
    assert (block.name, block.argument, block.is_instruction) == ("Block", "", True)
    assert [c.name for c in block.children] == ["Mark", "End block"]
    assert block.text == "Block (unnamed)"


def test_block_without_colon_still_needs_a_name(ctx: FakeContext) -> None:
    assert [f.code for f in analyze("Block", ctx)] == ["missing-argument"]


def test_unnamed_block_is_an_info_finding_suggesting_a_name(ctx: FakeContext) -> None:
    findings = analyze(method("Block:", "    Mark: Equilibrate", "    End block"), ctx)
    assert [(f.severity, f.code, f.line) for f in findings] == [("info", "unnamed-block", 1)]
    assert "(e.g. 'Block: Equilibrate')" in findings[0].message
    assert (findings[0].col_start, findings[0].col_end) == (1, 7)


def test_suggested_name_without_a_mark_counts_the_blocks(ctx: FakeContext) -> None:
    text = method("Block: A", "    End block", "Block:", "    Wait: 1 s", "    End block")
    (finding,) = analyze(text, ctx)
    assert "(e.g. 'Block: Step 2')" in finding.message


def test_unnamed_block_without_end_block_warns_like_a_named_one(ctx: FakeContext) -> None:
    findings = analyze(method("Block:", "    Mark: a"), ctx)
    assert sorted(f.code for f in findings) == ["block-not-ended", "unnamed-block"]
    warning = next(f for f in findings if f.code == "block-not-ended")
    assert warning.message.startswith("Block (unnamed) has no End block")


def test_start_accepts_an_unnamed_block(make: Make) -> None:
    interp, run = make(method("Block:", "    Mark: a", "    End block", "Mark: b"))
    run.start()
    assert interp.state is SystemState.RUNNING
    assert run.mark_texts() == ["a", "b"]


def _same_run(make: Make, text: str, seconds: float) -> list[tuple[list[tuple[float, str]], str]]:
    """Marks and final state of the method with the block named 'X' and with it unnamed."""
    out = []
    for header in ("Block: X", "Block:"):
        interp, run = make(text.replace("Block: X", header))
        run.start()
        run.run_for(seconds)
        out.append((run.marks(), interp.state.value))
    return out


def test_runs_and_ends_exactly_like_a_named_block(make: Make) -> None:
    text = method(
        "Base: s",
        "Block: X",
        "    Mark: in",
        "    2 Mark: two",
        "    3 End block",
        "    Mark: skipped",
        "Mark: after",
    )
    named, unnamed = _same_run(make, text, 5)
    assert unnamed == named
    assert [m for _, m in unnamed[0]] == ["in", "two", "after"]
    assert abs(next(t for t, m in unnamed[0] if m == "two") - 2) < 0.11


def test_block_tag_is_empty_while_it_runs_and_the_timeline_is_its_own(make: Make) -> None:
    interp, run = make(method("Base: s", "3 Mark: before", "Block:", "    1 Mark: b"))
    run.start()
    run.run_for(3.5)
    assert interp.block == ""
    assert interp.block_time == pytest.approx(0.5, abs=0.11)
    assert interp.process_time == pytest.approx(3.5, abs=0.11)
    assert interp.block_amount("s") == pytest.approx(0.5, abs=0.11)
    assert run.log_line("Block (unnamed)").state == "running"
    run.run_for(1)
    assert run.mark_texts() == ["before", "b"]


def test_run_log_line_reads_block_unnamed_and_completes(make: Make) -> None:
    _, run = make(method("Block:", "    End block"))
    run.start()
    line = run.log_line("Block (unnamed)")
    assert line.state == "completed" and line.line_id is not None


def test_end_blocks_ends_unnamed_blocks_inside_named_ones(make: Make) -> None:
    interp, run = make(
        method("Block: Outer", "    Block:", "        Mark: in", "    Mark: never", "Mark: done")
    )
    run.start()
    assert interp.block == "" and run.mark_texts() == ["in"]
    interp.inject("End blocks", run.now, "ann")
    run.step()
    assert run.mark_texts() == ["in", "done"]
    assert interp.block == ""


def test_nested_unnamed_block_returns_the_tag_to_the_outer_name(make: Make) -> None:
    interp, run = make(
        method("Block: Outer", "    Block:", "        Mark: in", "        End block", "    Mark: x")
    )
    run.start()
    assert interp.block == "Outer"
    assert run.mark_texts() == ["in", "x"]


def test_end_block_cancels_watches_declared_in_an_unnamed_block(make: Make) -> None:
    text = method(
        "Base: s",
        "Watch: Level > 1",
        "    End block",
        "Block: X",
        "    Watch: Level > 100",
        "        Mark: never",
        "    Mark: start",
        "    10 Mark: skipped",
        "Mark: after",
    )
    results = []
    for header in ("Block: X", "Block:"):
        interp, run = make(text.replace("Block: X", header))
        run.start()
        run.run_for(1)
        run.context.set_value("Level", 2)
        run.run_for(1)
        results.append(run.mark_texts())
        assert run.log_line("Watch: Level > 100").state == "cancelled"
        assert run.log_line("10 Mark: skipped").state == "cancelled"
        assert interp.block == ""
    assert results[0] == results[1] == ["start", "after"]


def test_block_in_a_watch_waits_for_a_running_unnamed_block(make: Make) -> None:
    text = method(
        "Base: s",
        "Watch: Run Time > 1 s",
        "    Block: W",
        "        Mark: w",
        "        End block",
        "Block: X",
        "    Mark: main",
        "    3 End block",
        "Mark: done",
    )
    named, unnamed = _same_run(make, text, 4)
    assert unnamed == named
    assert [m for _, m in unnamed[0]] == ["main", "done", "w"]


def test_a_watch_ends_an_unnamed_block(make: Make) -> None:
    """The issue's example: the watch ends the block at Block Time 0.7 s, long before 1.0 min."""
    interp, run = make(
        method(
            "Watch: Block Time > 0.7 s",
            "    End block",
            "Block:",
            "    Mark: A",
            "    1.0 End block",
            "Mark: B",
            "Stop",
        )
    )
    run.start()
    run.run_for(2)
    assert run.mark_texts() == ["A", "B"]
    assert interp.state is SystemState.STOPPED
    assert abs(next(t for t, m in run.marks() if m == "B") - 0.8) < 0.11


def test_thresholds_in_an_unnamed_block_count_on_its_own_timeline(make: Make) -> None:
    _, run = make(method("Base: s", "2 Mark: a", "Block:", "    2 Mark: b", "    End block"))
    run.start()
    run.run_for(5)
    marks = run.marks()
    assert abs(next(t for t, m in marks if m == "b") - 4) < 0.11
