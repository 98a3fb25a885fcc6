"""The Modbus-attached example against the real device simulator (`setpoint-sim modbus`), run by
the engine on the real clock: commands reach the device, readings come back, codes map both ways,
and a Pause puts the device's outputs at their safe values."""

from __future__ import annotations

import asyncio
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
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.simdev.cli",
            "modbus",
            "--model",
            "chromatography",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        monkeypatch.setenv("SETPOINT_MODBUS_PORT", str(port))
        yield port
    finally:
        stop(process)


@pytest.mark.slow
async def test_engine_drives_the_modbus_device(device: int) -> None:
    uod = load_uod(ROOT / "uod_examples" / "chromatography_modbus.py")
    clock = RealClock()
    engine = Engine(uod, clock=clock, method="Mark: a\nWait: 1000 s\n")
    await engine.start()
    stop = asyncio.Event()
    loop_task = asyncio.create_task(run_realtime(engine, clock, stop))
    try:
        await until(lambda: engine.tag_value("Device Model") == "SP-CHROM")
        assert engine.tag_value("Inlet") == "None"
        engine.inject("Inlet: VA01\nPU01: 50 %", "alice")
        await until(lambda: float(engine.tag_value("FT01") or 0) > 55.0)
        assert engine.tag_value("Pump Running") is True
        engine.control(ControlAction.START, "alice")
        await until(lambda: float(engine.tag_value("Accumulated Volume") or 0) > 0.01)
        engine.control(ControlAction.PAUSE, "alice")
        await until(lambda: float(engine.tag_value("FT01") or 0) < 20.0)  # the pump slows down
        assert engine.tag_value("PU01") == 0.0 and engine.tag_value("Inlet") == "None"
        engine.control(ControlAction.UNPAUSE, "alice")
        await until(lambda: float(engine.tag_value("FT01") or 0) > 40.0)
        assert engine.tag_value("Inlet") == "VA01"
        assert engine.tag_value("Connection Status") == "Connected"
    finally:
        stop.set()
        await loop_task
        await engine.stop()
