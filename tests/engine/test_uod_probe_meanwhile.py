"""`UodProbe.wait(meanwhile)`: `run` imports the rest of the engine while the probe child loads
the UOD file (issue 15 item 3), and that changes nothing about what the probe decides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import uod_probe
from engine.uod import UodError
from engine.uod_probe import UodProbe

EXAMPLE = Path(__file__).resolve().parents[2] / "uod_examples" / "chromatography.py"


def _children() -> set[int]:
    tid = os.getpid()
    text = Path(f"/proc/{tid}/task/{tid}/children").read_text()
    return {int(pid) for pid in text.split()}


@pytest.fixture(params=[True, False], ids=["fork", "subprocess"])
def forking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if not request.param:
        monkeypatch.setattr(uod_probe, "can_fork", lambda: False)
    elif not uod_probe.can_fork():
        pytest.skip("this process cannot fork the probe (a thread runs)")
    return bool(request.param)


def test_meanwhile_runs_once_and_a_good_file_still_loads(forking: bool) -> None:
    calls: list[int] = []
    with UodProbe(EXAMPLE, 30.0) as probe:
        probe.wait(lambda: calls.append(1))
    assert calls == [1]


def test_a_bad_file_is_still_refused(forking: bool, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def create():\n    raise RuntimeError('no unit here')\n")
    calls: list[int] = []
    with UodProbe(bad, 30.0) as probe, pytest.raises(UodError, match="no unit here"):
        probe.wait(lambda: calls.append(1))
    assert calls == [1]


def test_a_failing_meanwhile_ends_the_child_and_goes_on(forking: bool) -> None:
    before = _children()

    def fail() -> None:
        raise ImportError("a module is missing")

    with UodProbe(EXAMPLE, 30.0) as probe, pytest.raises(ImportError, match="missing"):
        probe.wait(fail)
    assert _children() <= before
