"""Conditions and thresholds convert units with pint; a UOD can add units and base units."""

from __future__ import annotations

import pytest

from engine.lang.analyzer import analyze
from engine.lang.testing import FakeContext, interpreter_for
from engine.lang.units import define_unit, new_unit_registry
from tests.lang.conftest import Make, method


def test_condition_converts_to_the_tag_unit(make: Make, ctx: FakeContext) -> None:
    _, run = make(method("Watch: TT01 > 122 degF", "    Mark: hot"))
    run.start()
    ctx.set_value("TT01", 49.9)
    run.step()
    assert run.mark_texts() == []
    ctx.set_value("TT01", 50.1)
    run.step()
    assert run.mark_texts() == ["hot"]


def test_condition_on_a_rate(make: Make, ctx: FakeContext) -> None:
    _, run = make(method("Watch: FT01 >= 1 L/min", "    Mark: flowing"))
    run.start()
    ctx.set_value("FT01", 59)  # L/h
    run.step()
    ctx.set_value("FT01", 60)
    run.step()
    assert run.mark_texts() == ["flowing"]


def test_run_time_in_minutes(make: Make) -> None:
    _, run = make(method("Watch: Run Time > 0.05 min", "    Mark: w"))
    run.start()
    run.run_for(4)
    assert abs(run.marks()[0][0] - 3.1) < 0.11


def test_uod_unit_and_base_unit() -> None:
    ureg = new_unit_registry()
    define_unit(ureg, "AU = [absorbance]")
    define_unit(ureg, "AU = [absorbance]")  # a second definition is harmless
    ctx = FakeContext(ureg=ureg)
    ctx.add_tag("UV", 0.0, "mAU")
    ctx.add_totalizer("Balance", "g", 2.0, ["g", "kg"])  # 2 g/s onto a balance
    text = method("Watch: UV > 0.5 AU", "    Mark: peak", "Base: kg", "0.01 Mark: 10 g")
    assert analyze(text, ctx) == []
    _, _, run = interpreter_for(text, ctx)
    run.start()
    run.run_for(6)
    marks = dict((m, t) for t, m in run.marks())
    assert abs(marks["10 g"] - 5) < 0.11
    ctx.set_value("UV", 600)
    run.step()
    assert "peak" in run.mark_texts()
    assert [f.code for f in analyze("Watch: UV > 2 L\n    Mark: x", ctx)] == ["incompatible-unit"]


def test_column_volumes_and_pause(ureg: object) -> None:
    ctx = FakeContext(ureg=ureg)  # type: ignore[arg-type]
    ctx.add_totalizer("Accumulated CV", "CV", 0.1, ["CV"])
    interp, _, run = interpreter_for(
        method("Base: CV", "Block: Load", "    Mark: in", "    2 End block", "Mark: loaded"), ctx
    )
    run.start()
    run.run_for(10)
    assert interp.block_amount("CV") == pytest.approx(1.0)
    interp.pause(run.now, "ann")
    run.run_for(10)  # the pump keeps running in this fake, the CV timeline does not
    interp.unpause(run.now, "ann")
    run.run_for(10.05)
    marks = dict((m, t) for t, m in run.marks())
    assert abs(marks["loaded"] - 30) < 0.11


def test_volume_base_with_millilitres_on_a_litre_totalizer(ureg: object) -> None:
    ctx = FakeContext(ureg=ureg)  # type: ignore[arg-type]
    ctx.add_totalizer("Accumulated Volume", "L", 0.01, ["L", "mL"])
    _, _, run = interpreter_for(method("Base: mL", "50 Mark: half"), ctx)
    run.start()
    run.run_for(6)
    assert abs(run.marks()[0][0] - 5) < 0.11


def test_a_unit_pint_does_not_know_still_compares_with_itself(ureg: object) -> None:
    ctx = FakeContext(ureg=ureg)  # type: ignore[arg-type]
    ctx.add_tag("Turbidity", 1.0, "NTU")
    assert analyze("Watch: Turbidity > 5 NTU\n    Mark: x\nSimulate: Turbidity = 2 NTU", ctx) == []
    assert [f.code for f in analyze("Watch: Turbidity > 5 L\n    Mark: x", ctx)] == [
        "incompatible-unit"
    ]
