"""`prepare_unit_registry`: a registry built ahead (before the UOD probe forks) is handed out
once, as fresh as one built on the spot (issue 15 item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import uod_probe
from engine.lang import units
from engine.lang.units import is_unit, new_unit_registry, prepare_unit_registry
from engine.uod_probe import UodProbe

EXAMPLE = Path(__file__).resolve().parents[2] / "uod_examples" / "chromatography.py"


@pytest.fixture(autouse=True)
def _nothing_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(units, "_prepared", [])


def test_a_prepared_registry_is_handed_out_once() -> None:
    prepare_unit_registry()
    prepare_unit_registry()  # one at a time
    first, second = new_unit_registry(), new_unit_registry()
    assert first is not second
    for ureg in (first, second):
        assert is_unit(ureg, "CV") and is_unit(ureg, "mL/min") and not is_unit(ureg, "widget")
    assert units._prepared == []


def test_the_probe_prepares_the_registry_this_process_takes_next() -> None:
    if not uod_probe.can_fork():
        pytest.skip("this process cannot fork the probe (a thread runs)")
    with UodProbe(EXAMPLE, 30.0) as probe:
        probe.wait()
    assert len(units._prepared) == 1
    prepared = units._prepared[0]
    assert new_unit_registry() is prepared and units._prepared == []
