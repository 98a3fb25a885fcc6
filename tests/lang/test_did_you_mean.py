"""A suggestion is told once per finding: in `suggestion`, never also in the message, so that
`setpoint-engine check` and the editor (which append it) and `str()` (which adds it for Start
refusals and injection errors) each show it exactly once."""

from __future__ import annotations

import re

import pytest

from engine.cli import _findings_lines
from engine.lang.analyzer import analyze
from engine.lang.testing import FakeContext
from tests.lang.conftest import method

CASES = {
    "unknown-instruction": ("Mrak: a", "Mark"),
    "unknown-tag": ("Simulate off: TT1", "TT01"),
    "condition-tag": (method("Watch: TT1 > 5 degC", "    Mark: hot"), "TT01"),
    "undefined-macro": (method("Macro: Rinse", "    Mark: r", "Call macro: Rinze"), "Rinse"),
    "unknown-value": (method("Watch: Inlet = VA03", "    Mark: x"), "VA01"),
    "missing-unit": (method("Watch: TT01 > 5", "    Mark: x"), "5 degC"),
}


def _once(text: str, hint: str) -> bool:
    return len(re.findall(rf"did you mean '?\"?{re.escape(hint)}", text, re.IGNORECASE)) == 1


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_suggestion_appears_once(ctx: FakeContext, case: str) -> None:
    text, hint = CASES[case]
    (finding,) = [f for f in analyze(text, ctx) if f.suggestion]
    assert finding.suggestion == hint
    assert "did you mean" not in finding.message.lower()
    assert _once(str(finding), hint)
    (line,) = [x for x in _findings_lines("m.pcode", text, [finding])]
    assert _once(line, hint), line


def test_start_refusal_and_injection_error_carry_the_suggestion_once(ctx: FakeContext) -> None:
    from engine.lang.interpreter import InjectionError
    from engine.lang.testing import interpreter_for

    interp, _, _ = interpreter_for("Mrak: a", ctx)
    with pytest.raises(Exception) as started:
        interp.start(0.0)
    assert _once(str(started.value), "Mark")
    with pytest.raises(InjectionError) as injected:
        interp.inject("Mrak: a", 0.0)
    assert _once(str(injected.value), "Mark")
