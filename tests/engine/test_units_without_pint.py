"""The example unit runs on the unit table alone; a unit outside it brings pint in and works.

pint is ~5.6 MB of the running engine (issue 15 item 3), so engine/lang/units.py answers the
units the examples use from its own table. The chromatography example's method runs to the end
(as in test_example_frames.py) in a child process, which then must not have imported pint; the
same run with one condition in torr (not in the table) imports it and still converts. A child
process, because this one has imported pint for other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TypedDict

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio, json, sys
from engine.clock import FakeClock
from engine.engine import Engine
from engine.uod import load_uod
from protocol.models import ControlAction
from tests.engine.test_example_frames import EXAMPLES, SCANS, RecordingLink

uod = load_uod(str(EXAMPLES / "chromatography.py"))
method = sys.argv[1] + (EXAMPLES / "chromatography.pcode").read_text()
clock = FakeClock(1_000.0, wall_start=1_790_000_000.0)
link = RecordingLink()
link.connected = True
engine = Engine(uod, clock=clock, method=method, sink=link, ureg=uod.unit_registry)
asyncio.run(engine.start())
engine.scan(clock.monotonic())
engine.control(ControlAction.START, "tester")
for _ in range(SCANS):
    clock.advance(uod.scan_interval)
    engine.scan(clock.monotonic())
engine.final_report()
ran = {
    line["text"]
    for frame in map(json.loads, link.frames) if frame["type"] == "RunLog"
    for line in frame["lines"] if line["state"] == "completed"
}
print(json.dumps({
    "pint": "pint" in sys.modules,
    "uses_pint": uod.unit_registry.uses_pint,
    "frames": len(link.frames),
    "done": "Mark: Done" in ran,
    "low": "Mark: low in torr" in ran,
}))
"""


class Outcome(TypedDict):
    pint: bool
    uses_pint: bool
    frames: int
    done: bool
    low: bool


def _run(extra_lines: str) -> Outcome:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, extra_lines],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    result: Outcome = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_example_runs_to_the_end_without_pint() -> None:
    result = _run("")
    assert result["done"] and result["frames"] > 500
    assert result["pint"] is False and result["uses_pint"] is False


def test_a_unit_outside_the_table_imports_pint_and_converts() -> None:
    # PT01 is in bar and stays below ~3 bar: 7500 torr is ~10 bar.
    result = _run("Watch: PT01 < 7500 torr\n    Mark: low in torr\n")
    assert result["pint"] is True and result["uses_pint"] is True
    assert result["low"] and result["done"]
    never = _run("Watch: PT01 < -75 torr\n    Mark: low in torr\n")
    assert never["pint"] is True and not never["low"]
