"""pcode.md section 10: every check, with severity, columns and suggestions."""

from __future__ import annotations

import pytest

from engine.lang.analyzer import Finding, analyze
from engine.lang.testing import FakeContext
from tests.lang.conftest import method


def only(findings: list[Finding], code: str) -> Finding:
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, findings
    return found[0]


def codes(text: str, ctx: FakeContext, **kw: object) -> list[str]:
    return [f.code for f in analyze(text, ctx, **kw)]  # type: ignore[arg-type]


def test_clean_method_has_no_findings(ctx: FakeContext) -> None:
    text = method(
        "Base: s",
        "Batch: B-17",
        "PU01: 10 %",
        "Watch: TT01 > 50 degC",
        "    Mark: hot",
        "Alarm: Inlet = VA02",
        "    Inlet: VA01",
        "Macro: Rinse",
        "    Wait: 5 s",
        "Block: Equilibrate",
        "    Call macro: Rinse",
        "    10 End block",
        "Simulate: TT01 = 70 degF",
        "Simulate off: TT01",
        "Run counter: 2",
        "Increment run counter",
        "Pause: 1 min",
        "Hold",
        "Notify: done",
        "Info: i",
        "Warning: w",
        "Error: e",
        "End blocks",
        "Stop",
    )
    assert analyze(text, ctx) == []


# -- syntax and indentation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "line", "col"),
    [
        ("Mark: a\n\tMark: b", "indentation", 2, 1),
        ("Mark: a\n   Mark: b", "indentation", 2, 1),
        ("Mark: a\n    Mark: b", "unexpected-indent", 2, 1),
        ("Mark:b", "syntax", 1, 5),
        ("Mark:", "missing-argument", 1, 5),
        ("2", "missing-instruction", 1, 1),
    ],
)
def test_syntax_and_indentation(
    ctx: FakeContext, text: str, code: str, line: int, col: int
) -> None:
    finding = only(analyze(text, ctx), code)
    assert (finding.severity, finding.line, finding.col_start) == ("error", line, col)


def test_unknown_instruction_with_did_you_mean(ctx: FakeContext) -> None:
    finding = only(analyze("Mark: a\n  # c\nEnd blok", ctx), "unknown-instruction")
    assert (finding.line, finding.col_start, finding.col_end) == (3, 1, 9)
    assert finding.suggestion == "End block"
    assert finding.message == "Unknown instruction 'End blok'"
    assert str(finding).count("Did you mean 'End block'?") == 1


def test_unknown_instruction_suggests_uod_commands_and_case(ctx: FakeContext) -> None:
    assert only(analyze("PU1: 10 %", ctx), "unknown-instruction").suggestion == "PU01"
    assert only(analyze("mark: x", ctx), "unknown-instruction").suggestion == "Mark"
    assert only(analyze("Qwertyuiop", ctx), "unknown-instruction").suggestion is None


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("PU01: lots", "invalid-argument"),  # the UOD command's own check
        ("Inlet: VA09", "invalid-argument"),
        ("Base: kg", "unknown-unit"),
        ("Wait: 5", "invalid-argument"),
        ("Wait: 5 L", "invalid-argument"),
        ("Wait: soon", "invalid-argument"),
        ("Pause: 3 parsecs", "invalid-argument"),
        ("Hold: x", "invalid-argument"),
        ("Run counter: -1", "invalid-argument"),
        ("Run counter: 1.5", "invalid-argument"),
        ("Simulate: TT01 = 5", "invalid-argument"),
        ("Simulate: Nope = 5", "invalid-argument"),
        ("Simulate: TT01 > 5 degC", "invalid-argument"),
        ("Simulate: Inlet = VA07", "invalid-argument"),
        ("Simulate off: TT1", "unknown-tag"),
        ("Stop: now", "unexpected-argument"),
        ("End block: x", "unexpected-argument"),
        ("Mark", "missing-argument"),
        ("Block", "missing-argument"),
    ],
)
def test_arguments_that_do_not_fit(ctx: FakeContext, text: str, code: str) -> None:
    finding = only(analyze(text, ctx), code)
    assert finding.severity == "error" and finding.message


def test_argument_columns_point_at_the_argument(ctx: FakeContext) -> None:
    finding = only(analyze("2 Wait: 5 parsecs  # slow", ctx), "invalid-argument")
    assert (finding.col_start, finding.col_end) == (9, 18)


def test_base_suggests_known_units(ctx: FakeContext) -> None:
    ctx.bases["L"] = "FT01"
    finding = only(analyze("Base: l", ctx), "unknown-unit")
    assert finding.suggestion == "L" and "s, min, h, L" in finding.message


# -- conditions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "code", "col_start", "col_end"),
    [
        ("TT1 > 5 degC", "unknown-tag", 8, 11),
        ("TT01 50 degC", "missing-operator", 8, 20),
        ("TT01 >", "missing-value", 13, 14),
        ("> 5", "missing-tag", 8, 9),
        ("TT01 > 50", "missing-unit", 15, 17),
        ("Level > 5 L", "unexpected-unit", 16, 19),
        ("TT01 > 50 L", "incompatible-unit", 15, 19),
        ("TT01 > 50 blorps", "unknown-unit", 15, 24),
        ("Inlet > VA01", "text-operator", 16, 20),
        ("Inlet = VA03", "unknown-value", 16, 20),
        ("TT01 > warm", "expected-number", 15, 19),
        ("TT01 ! 5", "missing-operator", 13, 14),
    ],
)
def test_condition_problems(
    ctx: FakeContext, condition: str, code: str, col_start: int, col_end: int
) -> None:
    finding = only(analyze(f"Watch: {condition}\n    Mark: x", ctx), code)
    assert finding.severity == "error"
    assert (finding.col_start, finding.col_end) == (col_start, col_end)


def test_unknown_tag_did_you_mean(ctx: FakeContext) -> None:
    finding = only(analyze("Alarm: Run Countr > 2\n    Mark: x", ctx), "unknown-tag")
    assert finding.suggestion == "Run Counter"
    assert finding.message == "Unknown tag 'Run Countr'"


def test_missing_unit_suggests_the_tag_unit(ctx: FakeContext) -> None:
    assert only(analyze("Watch: TT01 > 50\n    Mark: x", ctx), "missing-unit").suggestion == (
        "50 degC"
    )


@pytest.mark.parametrize(
    "condition",
    [
        "TT01 >= 122 degF",
        "TT01 <= 300 K",
        "TT01 == 20 degC",
        "TT01 != 20 degC",
        "TT01 < 20 degC",
        "TT01 = 20 degC",
        "Run Time > 2 min",
        "Block Time > 30 s",
        "Level > 3",
        "Inlet = VA01",
        "Inlet == VA02",
        "Inlet != VA02",
        "Note = hello there",
        "System State = Running",
        "Method Status != Error",
        "FT01 > 2 mL/min",
    ],
)
def test_valid_conditions(ctx: FakeContext, condition: str) -> None:
    assert analyze(f"Watch: {condition}\n    Mark: x", ctx) == []


# -- structure ----------------------------------------------------------------------------------


def test_block_without_end_block_warns(ctx: FakeContext) -> None:
    finding = only(analyze("Block: A\n    Mark: a", ctx), "block-not-ended")
    assert finding.severity == "warning" and finding.line == 1


@pytest.mark.parametrize(
    "body",
    [
        ["    End block"],
        ["    Watch: Level > 2", "        End block"],
        ["    Block: Inner", "        End blocks"],
        ["    Call macro: Finish"],
    ],
)
def test_block_ended_somewhere_in_its_body(ctx: FakeContext, body: list[str]) -> None:
    text = method("Macro: Finish", "    End block", "Block: A", *body)
    assert "block-not-ended" not in codes(text, ctx)


def test_unreachable_after_end_block(ctx: FakeContext) -> None:
    findings = analyze(method("Block: A", "    End block", "    Mark: x", "Mark: y"), ctx)
    finding = only(findings, "unreachable")
    assert (finding.severity, finding.line) == ("warning", 3)


def test_unreachable_after_end_blocks_up_the_chain(ctx: FakeContext) -> None:
    text = method(
        "Block: O",
        "    Block: I",
        "        End blocks",
        "        Mark: a",
        "    Mark: b",
        "Mark: c",
    )
    unreachable = [f.line for f in analyze(text, ctx) if f.code == "unreachable"]
    assert unreachable == [4, 5]


def test_unreachable_after_end_blocks_in_a_watch_declared_in_a_block(ctx: FakeContext) -> None:
    text = method(
        "Block: Outer",
        "    Watch: Block Time > 2 s",
        "        Block: WIn",
        "            Mark: w",
        "            1 End blocks",
        "            Mark: a",
        "        Mark: never1",
        "        Mark: never2",
        "    Mark: reachable: may run before the watch fires",
        "Mark: after",
    )
    findings = [f for f in analyze(text, ctx) if f.code == "unreachable"]
    assert [f.line for f in findings] == [6, 7, 8]
    assert "ends the block this Watch was declared in" in findings[1].message


@pytest.mark.parametrize("kind", ["Watch: Level > 1", "Alarm: Level > 1"])
def test_unreachable_after_end_blocks_directly_in_a_body_declared_in_a_block(
    ctx: FakeContext, kind: str
) -> None:
    text = method(
        "Block: B",
        f"    {kind}",
        "        Watch: Level > 2",
        "            End blocks",
        "            Mark: x",
        "        Mark: y",
        "    Mark: z",
    )
    assert [f.line for f in analyze(text, ctx) if f.code == "unreachable"] == [5]


NOT_UNREACHABLE = [
    # a watch at top level goes on after End blocks
    ["Watch: Level > 1", "    End blocks", "    Mark: x"],
    ["Watch: Level > 1", "    Block: W", "        End blocks", "    Mark: x"],
    # End block in the body may end a block the main path entered later, not this one
    ["Block: B", "    Watch: Level > 1", "        End block", "        Mark: x"],
    # a macro may be called outside any block
    [
        "Block: B",
        "    Macro: M",
        "        Watch: Level > 1",
        "            End blocks",
        "            Mark: x",
    ],
]


@pytest.mark.parametrize("lines", NOT_UNREACHABLE)
def test_rest_of_a_body_that_goes_on_is_reachable(ctx: FakeContext, lines: list[str]) -> None:
    assert "unreachable" not in codes(method(*lines), ctx)


@pytest.mark.parametrize("ender", ["Stop", "Restart", "5 Stop"])
def test_unreachable_after_top_level_stop(ctx: FakeContext, ender: str) -> None:
    findings = analyze(method("Mark: a", ender, "Mark: b", "# note", "Mark: c"), ctx)
    assert [f.line for f in findings if f.code == "unreachable"] == [3, 5]


def test_stop_inside_a_watch_leaves_the_rest_reachable(ctx: FakeContext) -> None:
    assert "unreachable" not in codes(method("Watch: Level > 1", "    Stop", "Mark: b"), ctx)


def test_thresholds_out_of_order(ctx: FakeContext) -> None:
    text = method("Base: s", "5 Mark: a", "Base: min", "1 Mark: b", "0.01 Mark: c")
    finding = only(analyze(text, ctx), "threshold-order")
    assert (finding.line, finding.col_start, finding.col_end) == (5, 1, 5)


def test_thresholds_per_timeline(ctx: FakeContext) -> None:
    text = method(
        "Base: s",
        "5 Mark: a",
        "Block: B",
        "    1 Mark: b",
        "    2 End block",
        "6 Mark: c",
        "Watch: Level > 1",
        "    1 Mark: w",
    )
    assert "threshold-order" not in codes(text, ctx)


def test_undefined_macro_lists_defined_ones(ctx: FakeContext) -> None:
    text = method("Macro: Rinse", "    Mark: r", "Macro: Fill", "    Mark: f", "Call macro: Rnse")
    finding = only(analyze(text, ctx), "undefined-macro")
    assert finding.severity == "error" and "Fill, Rinse" in finding.message
    assert finding.suggestion == "Rinse"


def test_recursive_macros(ctx: FakeContext) -> None:
    direct = only(
        analyze(method("Macro: A", "    Call macro: A", "Call macro: A"), ctx), "recursive-macro"
    )
    assert direct.line == 2 and direct.severity == "error"
    text = method(
        "Macro: A",
        "    Call macro: B",
        "Macro: B",
        "    Watch: Level > 1",
        "        Call macro: A",
        "Call macro: A",
    )
    findings = [f for f in analyze(text, ctx) if f.code == "recursive-macro"]
    assert {f.line for f in findings} == {2, 5} and "A -> B -> A" in findings[0].message


def test_unused_macro_is_info(ctx: FakeContext) -> None:
    finding = only(analyze("Macro: M\n    Mark: m", ctx), "unused-macro")
    assert finding.severity == "info"


@pytest.mark.parametrize("name", ["Unpause", "Unhold"])
def test_unpause_and_unhold_in_a_method(ctx: FakeContext, name: str) -> None:
    finding = only(analyze(f"Mark: a\n{name}", ctx), "operator-command")
    assert (finding.severity, finding.line) == ("error", 2)
    assert analyze(name, ctx, injected=True) == []


def test_injected_code_knows_the_running_macros(ctx: FakeContext) -> None:
    assert codes("Call macro: M", ctx, injected=True) == ["undefined-macro"]
    assert codes("Call macro: M", ctx, injected=True, known_macros=["M"]) == []


def test_empty_watch_body_warns(ctx: FakeContext) -> None:
    assert only(analyze("Watch: Level > 1", ctx), "empty-body").severity == "warning"


def test_uod_base_units(ureg: object) -> None:
    ctx = FakeContext(ureg=ureg)  # type: ignore[arg-type]
    ctx.add_totalizer("Accumulated CV", "CV", 0.1, ["CV"])
    assert analyze(method("Base: CV", "1 Mark: a", "0.5 Mark: b"), ctx)[0].code == (
        "threshold-order"
    )
    assert analyze("Base: L", ctx)[0].code == "unknown-unit"


def test_findings_are_sorted_and_printable(ctx: FakeContext) -> None:
    findings = analyze(method("Mrak: a", "Wait: x", "Stop", "Mark: z"), ctx)
    assert [f.line for f in findings] == sorted(f.line for f in findings)
    assert str(findings[0]).startswith("line 1:1: error: Unknown instruction 'Mrak'")
