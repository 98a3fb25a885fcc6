"""engine.calc: calculated-tag helpers, alone and in a running engine with a P-code watch."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.calc import time_in_band
from protocol.models import ControlAction

from .conftest import Harness, build_uod


def test_time_in_band_counts_while_inside_and_restarts_after_leaving() -> None:
    steady = time_in_band("TT01", 36.5, 37.5)
    seen = [
        steady({"TT01": value, "Clock": clock})
        for clock, value in [(0, 36.0), (1, 36.5), (4, 37.0), (5, 38.0), (6, 37.5), (9, 37.2)]
    ]
    assert seen == [0.0, 0.0, 3.0, 0.0, 0.0, 3.0]


def test_time_in_band_treats_no_value_as_outside() -> None:
    steady = time_in_band("TT01", 0, 1)
    assert steady({"TT01": 0.5, "Clock": 0.0}) == 0.0
    assert steady({"TT01": None, "Clock": 1.0}) == 0.0
    assert steady({"TT01": True, "Clock": 2.0}) == 0.0
    assert steady({"TT01": 0.5, "Clock": 3.0}) == 0.0  # a new stretch starts here
    assert steady({"TT01": 0.5, "Clock": 4.5}) == 1.5


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: time_in_band("TT01", 2, 1), "time_in_band('TT01'): low 2 is above high 1"),
        (lambda: time_in_band("", 0, 1), "time_in_band: the tag name is empty"),
        (lambda: time_in_band("X", 0, 1)({"Clock": 1.0}), "time_in_band: no tag 'X'"),
        (lambda: time_in_band("X", 0, 1)({"X": 0.5}), "time_in_band('X'): no numeric 'Clock' tag"),
    ],
)
def test_time_in_band_errors_are_one_clear_line(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        build()
    assert str(info.value) == message


def test_a_watch_on_time_in_band_is_one_line_of_p_code() -> None:
    uod = build_uod(lambda u: u.calculated("Pump steady", time_in_band("PU01", 20, 40), unit="s"))
    method = (  # the recipe of docs/pcode.md
        "Block: Warm up\n"
        "    PU01: 30 %\n"
        "    Watch: Pump steady > 0.05 min\n"
        "        End block\n"
        "Mark: steady\n"
    )
    h = Harness(uod, method=method)
    h.engine.control(ControlAction.START, "alice")
    h.run_for(2)
    assert h.marks() == [] and 1.5 <= h.value("Pump steady") <= 2.1
    h.run_for(2)
    assert h.marks() == ["steady"]
