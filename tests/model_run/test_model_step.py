"""run_model's coarse simulated scans (engine/model_run_step.py) predict what the unit's own scan
interval predicts: the same marks, watches, alarms, end state and duration for the example
methods, with far fewer scans on a long method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import engine.model_run_core as core
from engine.model_run_step import StepPolicy
from engine.uod import load_uod

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "uod_examples"
CHROMATOGRAPHY = (EXAMPLES / "chromatography.pcode").read_text()
# The Load block stretched to 20 CV: 20 minutes of nothing changing, as in a real load.
LONG_LOAD = CHROMATOGRAPHY.replace(
    "    Mark: Load\n    1 End block", "    Mark: Load\n    20 End block"
)
assert LONG_LOAD != CHROMATOGRAPHY


def _predict(
    uod_name: str, text: str, coarse: float | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], StepPolicy]:
    policies: list[StepPolicy] = []

    class Recording(StepPolicy):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            policies.append(self)

    monkeypatch.setattr(core, "StepPolicy", Recording)
    result: dict[str, Any] = {}

    def report(status: str, data: dict[str, Any]) -> None:
        assert status in ("working", "finished"), data
        if status == "finished":
            result.update(data["final"])

    core.simulate_method(load_uod(EXAMPLES / f"{uod_name}.py"), text, report, coarse_step=coarse)
    return result, policies[0]


@pytest.mark.parametrize(
    ("uod_name", "method"),
    [
        ("chromatography", "chromatography"),
        ("chromatography", "long load"),
        ("vessel", "vessel"),
        ("dosing", "dosing"),
        ("chromatography_modbus", "chromatography_modbus"),
    ],
)
def test_coarse_steps_predict_what_fine_steps_predict(
    uod_name: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = LONG_LOAD if method == "long load" else (EXAMPLES / f"{method}.pcode").read_text()
    fine, fine_policy = _predict(uod_name, text, None, monkeypatch)
    coarse, coarse_policy = _predict(uod_name, text, 1.0, monkeypatch)
    interval = fine_policy.interval
    assert fine_policy.coarse_scans == 0
    assert coarse["end_state"] == fine["end_state"] == "Stopped"
    assert coarse["duration"] == pytest.approx(fine["duration"], abs=interval + 1e-6)
    for key in ("marks", "watches"):
        assert [m["text"] for m in coarse[key]] == [m["text"] for m in fine[key]]
        for c, f in zip(coarse[key], fine[key], strict=True):
            assert c["run_time"] == pytest.approx(f["run_time"], abs=interval + 1e-6)
    assert [a["name"] for a in coarse["alarms"]] == [a["name"] for a in fine["alarms"]]
    assert coarse["tags"].keys() == fine["tags"].keys()
    for tag, stats in fine["tags"].items():
        for what in ("min", "max", "last"):
            assert coarse["tags"][tag][what] == pytest.approx(stats[what], rel=1e-3, abs=1e-6)
    for series in coarse["trace"].values():
        assert 0 < len(series["run_time"]) == len(series["v"]) <= 1000
        assert series["run_time"] == sorted(series["run_time"])
    if method == "long load":  # most of the 20 CV load is scanned once a second
        scans = coarse_policy.fine_scans + coarse_policy.coarse_scans
        assert coarse_policy.coarse_scans > 900
        assert scans < 0.4 * fine_policy.fine_scans


def test_the_policy_scans_fine_only_when_something_may_happen() -> None:
    policy = StepPolicy(0.1, 1.0, ["UV01"])
    assert policy.ratio == 10
    quiet = {"UV01": 150.0}
    assert policy.next_ratio(0.0, quiet, False) == 1  # first look: nothing known yet
    assert policy.next_ratio(1.0, quiet, False) == 1  # QUIET_AFTER the start
    assert policy.next_ratio(6.0, quiet, False) == 10
    assert policy.next_ratio(7.0, quiet, True) == 1  # a command runs every scan
    assert policy.next_ratio(8.0, {"UV01": 151.0}, False) == 1  # a reading moves
    assert policy.next_ratio(9.0, {"UV01": 151.0}, False) == 10
    policy.activity(9.0)  # a line ran
    assert policy.next_ratio(10.0, {"UV01": 151.0}, False) == 1
    assert policy.next_ratio(14.5, {"UV01": 151.0}, False) == 10
    # a threshold 100 s long, reported at 10 % and 20 %: due near 110 s
    policy.line("l1", 0.1, False, 20.0)
    policy.line("l1", 0.2, False, 30.0)
    assert policy.next_ratio(50.0, {"UV01": 151.0}, False) == 10
    assert policy.next_ratio(106.0, {"UV01": 151.0}, False) == 10
    assert policy.next_ratio(108.0, {"UV01": 151.0}, False) == 1
    policy.line("l1", 1.0, True, 110.0)  # it ended
    assert policy.next_ratio(111.0, {"UV01": 151.0}, False) == 10
    policy.line("l2", 0.995, False, 112.0)  # no rate yet, but nearly done
    assert policy.next_ratio(113.0, {"UV01": 151.0}, False) == 1
    assert StepPolicy(0.1, None, ["UV01"]).next_ratio(20.0, quiet, False) == 1


def test_a_method_without_stop_is_predicted_until_it_is_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing ends such a run but a Stop: the prediction ends when the method has nothing left
    armed or running (the unit stays Running), not after a simulated day of an idle unit (which
    cost ~48 s of CPU at every Start: the prediction at Start runs every method)."""
    result, policy = _predict("chromatography", "Mark: start\nWait: 600 s\n", 1.0, monkeypatch)
    assert result["end_state"] == "Running"
    assert 600.0 <= result["duration"] <= 600.2
    assert [m["text"] for m in result["marks"]] == ["start"]
    assert policy.fine_scans + policy.coarse_scans < 7000  # the 600 s, not 86,400 s of scans
