"""Every example UOD loads, its method passes `check`, and runs to Stopped under `simulate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "uod_examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.pcode") if (EXAMPLES / f"{p.stem}.py").exists())
EXPECTED_MARKS = {
    "chromatography": ["Buffer A", "Load", "Buffer A", "Elution", "Peak", "Done"],
    "vessel": ["At temperature", "Dosed", "Done"],
}


def test_the_simulated_examples_are_there() -> None:
    assert {"chromatography", "vessel"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_check_is_clean(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "check",
            "--uod",
            str(EXAMPLES / f"{name}.py"),
            "--method",
            str(EXAMPLES / f"{name}.pcode"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert ": error:" not in out


@pytest.mark.parametrize("name", sorted(EXPECTED_MARKS))
def test_example_method_runs_to_stopped(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            "--uod",
            str(EXAMPLES / f"{name}.py"),
            "--method",
            str(EXAMPLES / f"{name}.pcode"),
            "--speed",
            "max",
            "--json",
        ]
    )
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events, "no output"
    for event in events:
        assert set(event) >= {"run_time", "kind", "text", "state"}
        assert event["kind"] in {"mark", "command", "state", "error"}
    assert events[0] == {"run_time": 0.0, "kind": "state", "text": "Running", "state": "Running"}
    assert events[-1]["kind"] == "state" and events[-1]["text"] == "Stopped"
    assert [e["text"] for e in events if e["kind"] == "mark"] == EXPECTED_MARKS[name]
    assert not [e for e in events if e["kind"] == "error"]
    assert not [e for e in events if e.get("line_state") == "failed"]
    times = [e["run_time"] for e in events]
    assert times == sorted(times)
    assert times[-1] < 600  # a few simulated minutes


def test_chromatography_alarm_fires_on_pressure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The pressure alarm of the example method reduces the flow when the column is pushed."""
    method = (
        (EXAMPLES / "chromatography.pcode").read_text().replace("Flow: 60 L/h", "Flow: 120 L/h")
    )
    path = tmp_path / "fast.pcode"
    path.write_text(method)
    code = main(
        [
            "simulate",
            "--uod",
            str(EXAMPLES / "chromatography.py"),
            "--method",
            str(path),
            "--json",
            "--for",
            "30",
        ]
    )
    assert code == 0
    texts = [json.loads(line)["text"] for line in capsys.readouterr().out.splitlines()]
    assert "Flow: 30 L/h" in texts
