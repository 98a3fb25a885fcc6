"""Random text never makes the parser or the analyzer raise: they only report findings."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.lang.analyzer import analyze
from engine.lang.instructions import BUILTINS
from engine.lang.interpreter import RunControlError
from engine.lang.parser import parse
from engine.lang.testing import FakeContext, interpreter_for
from engine.lang.units import Registry
from tests.lang.conftest import standard_context

WORDS = [
    # every built-in instruction, from the engine's own table: a new one is fuzzed at once
    *BUILTINS,
    # the standard context's commands and tags, units, numbers, punctuation and white space
    "PU01",
    "Inlet",
    "Slow",
    "TT01",
    "Run Time",
    "Level",
    "Inlet",
    "x",
    "M",
    "s",
    "min",
    "h",
    "L",
    "degC",
    "%",
    "VA01",
    "1",
    "0.5",
    "2",
    "-3",
    ":",
    ": ",
    "#",
    "<",
    ">",
    "=",
    "==",
    "!=",
    "<=",
    ">=",
    "!",
    " ",
    "    ",
    "\t",
]

tokens = st.lists(st.sampled_from(WORDS), max_size=8).map("".join)
noise = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
line = st.one_of(tokens, noise, st.builds(lambda i, t: "    " * i + t, st.integers(0, 3), tokens))
texts = st.lists(line, max_size=15).map("\n".join)

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(text=st.one_of(texts, noise))
def test_parser_and_analyzer_only_report(ureg: Registry, text: str) -> None:
    parsed = parse(text)
    assert len(parsed.lines) == len(text.split("\n")) - (1 if text.endswith("\n") else 0)
    ctx = standard_context(ureg)
    for finding in analyze(text, ctx) + analyze(text, ctx, injected=True):
        assert finding.severity in ("error", "warning", "info")
        assert finding.line >= 1 and 1 <= finding.col_start < finding.col_end
        assert finding.code and finding.message


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=texts)
def test_methods_that_pass_analysis_run_without_raising(ureg: Registry, text: str) -> None:
    ctx: FakeContext = standard_context(ureg)
    interp, _, run = interpreter_for(text, ctx)
    try:
        run.start()
    except RunControlError:
        return
    run.run_for(2)
    if interp.state.value != "Stopped":
        interp.stop(run.now, "ann")
    assert interp.run_id == ""


VALID_LINES = [
    "Mark: a",
    "Mark: b",
    "1 Mark: t",
    "Wait: 0.3 s",
    "Block: B",
    "    Mark: in",
    "    0.5 End block",
    "    End block",
    "Watch: Level > 1",
    "    Mark: w",
    "Alarm: Level > 2",
    "    Increment run counter",
    "Macro: M",
    "    Mark: m",
    "Call macro: M",
    "PU01: 5 %",
    "Slow",
    "Base: s",
    "# comment",
    "",
    "End blocks",
]

edits = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(0, 40),
        st.sampled_from(VALID_LINES),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.lists(st.sampled_from(VALID_LINES), min_size=1, max_size=12),
    steps=st.lists(st.tuples(edits, st.integers(0, 8)), min_size=1, max_size=5),
)
def test_live_edits_are_applied_or_refused_cleanly(
    ureg: Registry, start: list[str], steps: list[tuple[list[tuple[str, int, str]], int]]
) -> None:
    from engine.lang.interpreter import MethodEditError

    ctx = standard_context(ureg)
    interp, _, run = interpreter_for("\n".join(["Base: s", *start]), ctx)
    try:
        run.start()
    except RunControlError:
        return
    for changes, scans in steps:
        lines = [line.text for line in interp.method.lines]
        for kind, at, text in changes:
            at = min(at, len(lines))
            if kind == "insert":
                lines.insert(at, text)
            elif lines and kind == "delete":
                del lines[min(at, len(lines) - 1)]
            elif lines:
                lines[min(at, len(lines) - 1)] = text
        before = interp.method
        try:
            interp.set_method("\n".join(lines))
        except MethodEditError:
            assert interp.method == before
        for _ in range(scans):
            run.step()
            if interp.state.value == "Paused":
                interp.unpause(run.now, "ann")
