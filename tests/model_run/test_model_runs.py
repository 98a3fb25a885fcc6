"""engine/model_run.ModelRuns with real child processes, next to a real-time engine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.clock import RealClock
from engine.engine import Engine
from engine.model_run import ModelRuns
from engine.runner import LatencyRecorder, run_realtime
from engine.uod import load_uod
from protocol.models import ControlAction

ROOT = Path(__file__).resolve().parents[2]
UOD = ROOT / "uod_examples" / "chromatography.py"
METHOD = (ROOT / "uod_examples" / "chromatography.pcode").read_text()
LONG = METHOD.replace("    Mark: Load\n    1 End block", "    Mark: Load\n    40 End block")

pytestmark = pytest.mark.slow


class Reports:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, Any]] = []
        self.ended: dict[str, asyncio.Event] = {}

    def __call__(self, model_id: str, status: str, data: Any) -> None:
        self.items.append((model_id, status, data))
        if status in ("finished", "exception", "interrupted"):
            self.ended.setdefault(model_id, asyncio.Event()).set()

    async def end(self, model_id: str, timeout: float = 60.0) -> tuple[str, Any]:
        event = self.ended.setdefault(model_id, asyncio.Event())
        await asyncio.wait_for(event.wait(), timeout)
        return next((s, d) for i, s, d in reversed(self.items) if i == model_id)


async def test_the_real_unit_skips_no_scan_while_a_model_runs() -> None:
    uod = load_uod(UOD)
    clock = RealClock()
    engine = Engine(uod, clock=clock, method=METHOD)
    await engine.start()
    engine.scan(clock.monotonic())
    engine.control(ControlAction.START, "test")
    stop = asyncio.Event()
    recorder = LatencyRecorder()
    loop = asyncio.create_task(run_realtime(engine, clock, stop, recorder=recorder))
    reports = Reports()
    runs = ModelRuns(uod, reports)
    runs.submit("m", LONG, None, None)
    started = clock.monotonic()
    status, data = await reports.end("m")
    wall = clock.monotonic() - started
    stop.set()
    await loop
    await engine.stop()
    assert status == "finished", data
    assert data["final"]["duration"] > 2000
    # The model may finish in well under a second: every grid point of that window was scanned.
    assert len(recorder.samples) >= int(wall / engine.scan_interval) - 1
    assert recorder.skipped == 0


async def test_queue_cancel_and_failures() -> None:
    uod = load_uod(UOD)
    reports = Reports()
    runs = ModelRuns(uod, reports)
    runs.submit("a", LONG, 20.0, None)  # slow: 20 simulated seconds per second
    runs.submit("b", "Flw: 1\n", None, None)
    runs.submit("c", METHOD, None, None)
    assert runs.running == "a" and runs.pending == ["b", "c"]
    with pytest.raises(ValueError, match="already queued"):
        runs.submit("b", METHOD, None, None)
    runs.cancel("c")
    assert await reports.end("c") == ("interrupted", {"reason": "cancelled"})
    runs.cancel("a")
    assert (await reports.end("a"))[0] == "interrupted"
    status, data = await reports.end("b")
    assert status == "exception" and "line 1" in data["reason"]
    assert data["findings"][0]["line"] == 1
    assert not runs.cancel("b")
    statuses = [s for i, s, _ in reports.items if i == "b"]
    assert statuses[0] == "pending" and "working" in statuses


async def test_a_unit_without_a_model_is_refused(tmp_path: Path) -> None:
    from tests.examples.test_simulation_models import NO_MODEL

    path = tmp_path / "plant.py"
    path.write_text(NO_MODEL)
    runs = ModelRuns(load_uod(path), Reports())
    with pytest.raises(ValueError, match=r"add uod\.simulation\("):
        runs.submit("x", "Stop\n", None, None)


async def test_for_limits_the_simulated_time() -> None:
    reports = Reports()
    runs = ModelRuns(load_uod(UOD), reports)
    runs.submit("f", METHOD, None, 30.0)
    status, data = await reports.end("f")
    assert status == "finished"
    assert data["final"]["duration"] == pytest.approx(30.0, abs=0.2)
    assert data["final"]["end_state"] == "Running"
