"""The serial dosing example against the pty instrument simulators (`setpoint-sim serial`), run by
the engine on the real clock: tare, pump at a speed, weight rising, Pause stops the pump."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.clock import RealClock
from engine.engine import Engine
from engine.runner import run_realtime
from engine.uod import load_uod
from protocol.models import ControlAction
from tests.examples.processes import stop, until

ROOT = Path(__file__).resolve().parents[2]


def _start(profile: str, state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.simdev.cli",
            "serial",
            "--profile",
            profile,
            "--state-dir",
            str(state_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "serial device: /dev/pts/N", printed once it is ready
    if not line.startswith("serial device: "):
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"setpoint-sim serial --profile {profile} said {line!r}")
    return process, line.split(": ", 1)[1].strip()


@pytest.fixture
def instruments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    processes: list[subprocess.Popen[str]] = []
    try:
        pump, pump_path = _start("pump", tmp_path)
        processes.append(pump)
        balance, balance_path = _start("balance", tmp_path)
        processes.append(balance)
        monkeypatch.setenv("SETPOINT_PUMP_PORT", pump_path)
        monkeypatch.setenv("SETPOINT_BALANCE_PORT", balance_path)
        yield
    finally:
        for process in processes:
            stop(process)


def _number(engine: Engine, tag: str) -> float:
    value = engine.tag_value(tag)
    return float(value) if isinstance(value, int | float) else float("nan")


@pytest.mark.slow
async def test_engine_doses_on_the_serial_instruments(instruments: None) -> None:
    uod = load_uod(ROOT / "uod_examples" / "dosing.py")
    clock = RealClock()
    engine = Engine(uod, clock=clock, method="Mark: a\nWait: 1000 s\n")
    await engine.start()
    stop = asyncio.Event()
    loop_task = asyncio.create_task(run_realtime(engine, clock, stop))
    try:
        await until(lambda: engine.tag_value("Pump State") == "STOP")
        engine.control(ControlAction.START, "alice")
        engine.inject("Tare", "alice")
        await until(lambda: abs(_number(engine, "Balance Weight")) < 0.5)
        engine.inject("Pump speed: 600 rpm\nPump: Run", "alice")
        await until(lambda: _number(engine, "Balance Weight") > 3.0)
        assert engine.tag_value("Pump State") == "RUN"
        assert _number(engine, "Pump Flow") > 400.0
        engine.control(ControlAction.PAUSE, "alice")
        await until(lambda: engine.tag_value("Pump State") == "STOP")
        assert engine.tag_value("Pump Command") == "Stop"
        assert engine.tag_value("Connection Status") == "Connected"
        assert not [e for e in engine.error_log if e.level == "error"], engine.error_log
    finally:
        stop.set()
        await loop_task
        await engine.stop()
