"""run_model benchmark: how fast a unit's method runs on its process model, and what a running
simulation does to the real unit's scan.

    .venv/bin/python bench/bench_run_model.py [--repeat 3]

Prints one JSON object (every figure with the load average when it was taken; CPU seconds are
the load-independent figure):
- `in_process`: 2 simulated hours of the chromatography method (its Load block stretched to 110
  CV) simulated in this process (engine/model_run_core.simulate_method) as run_model runs it,
  with coarse simulated scans (engine/model_run_step.py): simulated seconds, wall and CPU
  seconds, simulated seconds per wall and per CPU second, scans at the unit's interval and
  coarse ones, the predicted marks;
- `in_process_fine`: the same at the unit's 0.1 s scan throughout (the marks must be the same);
- `examples`: each example unit's own method, as `in_process`;
- `run_model`: the same through engine/model_run.ModelRuns as the engine runs it (child process
  engine/model_run.CHILD at nice 10, including its start-up) while a real-time engine
  in this process runs uod_examples/chromatography.py's method; wall seconds from submit to
  `finished`, the child's CPU seconds (start-up included), and that engine's scan lateness
  (p50, p99, max, skipped grid points) during the simulation, next to the same engine's
  lateness for as long without one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import model_run_core  # noqa: E402
from engine.clock import RealClock  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.model_run import ModelRuns  # noqa: E402
from engine.model_run_core import simulate_method  # noqa: E402
from engine.model_run_step import COARSE_STEP, StepPolicy  # noqa: E402
from engine.runner import LatencyRecorder, run_realtime  # noqa: E402
from engine.uod import load_uod  # noqa: E402
from protocol.models import ControlAction  # noqa: E402

UOD = ROOT / "uod_examples" / "chromatography.py"
METHOD = (ROOT / "uod_examples" / "chromatography.pcode").read_text()
TWO_HOURS = METHOD.replace("    Mark: Load\n    1 End block", "    Mark: Load\n    110 End block")


def _simulate(uod_path: Path, text: str, coarse: float | None) -> dict[str, Any]:
    uod = load_uod(uod_path)
    final: dict[str, Any] = {}

    def report(status: str, data: dict[str, Any]) -> None:
        if status == "finished":
            final.update(data["final"])

    policies: list[StepPolicy] = []

    class Counting(StepPolicy):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            policies.append(self)

    load = os.getloadavg()[0]
    setattr(model_run_core, "StepPolicy", Counting)  # noqa: B010 (counts the scans)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        simulate_method(uod, text, report, coarse_step=coarse)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        setattr(model_run_core, "StepPolicy", StepPolicy)  # noqa: B010
    return {
        "simulated_s": final["duration"],
        "scans": {"fine": policies[0].fine_scans, "coarse": policies[0].coarse_scans},
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "sim_s_per_wall_s": round(final["duration"] / wall, 1),
        "sim_s_per_cpu_s": round(final["duration"] / cpu, 1),
        "marks": [(m["run_time"], m["text"]) for m in final["marks"]],
        "load_avg": load,
    }


def in_process(coarse: float | None = COARSE_STEP) -> dict[str, Any]:
    return _simulate(UOD, TWO_HOURS, coarse)


def examples() -> dict[str, Any]:
    """Every example unit's own method (shorter than 2 h), coarse steps as run_model runs it."""
    out = {}
    for name in ("chromatography", "vessel", "dosing", "chromatography_modbus"):
        text = (ROOT / "uod_examples" / f"{name}.pcode").read_text()
        result = _simulate(ROOT / "uod_examples" / f"{name}.py", text, COARSE_STEP)
        out[name] = {k: v for k, v in result.items() if k != "marks"}
    return out


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _lateness(recorder: LatencyRecorder) -> dict[str, Any]:
    ms = sorted(s * 1e3 for s in recorder.samples)
    return {
        "scans": len(ms),
        "skipped": recorder.skipped,
        "p50_ms": round(ms[len(ms) // 2], 3),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
        "max_ms": round(ms[-1], 3),
    }


async def _real_unit(stop: asyncio.Event) -> LatencyRecorder:
    uod = load_uod(UOD)
    clock = RealClock()
    engine = Engine(uod, clock=clock, method=METHOD)
    await engine.start()
    engine.scan(clock.monotonic())
    engine.control(ControlAction.START, "bench")
    recorder = LatencyRecorder()
    await run_realtime(engine, clock, stop, recorder=recorder)
    await engine.stop()
    return recorder


async def through_model_runs() -> dict[str, Any]:
    uod = load_uod(UOD)
    done = asyncio.Event()
    result: dict[str, Any] = {}

    def send(model_id: str, status: str, data: Any) -> None:
        if status in ("finished", "exception", "interrupted"):
            result.update(status=status, data=data)
            done.set()

    stop = asyncio.Event()
    unit = asyncio.create_task(_real_unit(stop))
    await asyncio.sleep(1.0)  # the real unit is scanning before the simulation starts
    runs = ModelRuns(uod, send)
    load = os.getloadavg()[0]
    start, child_cpu = time.perf_counter(), _children_cpu()
    runs.submit("bench", TWO_HOURS, None, None)
    await done.wait()
    wall = time.perf_counter() - start
    child_cpu = _children_cpu() - child_cpu  # the child has been waited for: its whole life
    stop.set()
    during = await unit
    assert result["status"] == "finished", result
    quiet_stop = asyncio.Event()
    quiet = asyncio.create_task(_real_unit(quiet_stop))
    await asyncio.sleep(wall + 1.0)
    quiet_stop.set()
    without = await quiet
    simulated = result["data"]["final"]["duration"]
    return {
        "simulated_s": simulated,
        "wall_s": round(wall, 3),
        "child_cpu_s": round(child_cpu, 3),
        "sim_s_per_wall_s": round(simulated / wall, 1),
        "load_avg": load,
        "real_unit_lateness_during": _lateness(during),
        "real_unit_lateness_without": _lateness(without),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    out: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg": os.getloadavg()[0],
        "in_process_fine": [in_process(None) for _ in range(args.repeat)],
        "in_process": [in_process() for _ in range(args.repeat)],
        "examples": examples(),
        "run_model": [asyncio.run(through_model_runs()) for _ in range(args.repeat)],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
