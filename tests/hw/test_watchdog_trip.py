"""After the device's own watchdog trips, the engine must not go on believing its old outputs.

An in-process engine scans a real Modbus device (the chromatography simulator with its
communication-loss watchdog); the assertions read the device's registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from engine.clock import RealClock
from engine.commands import CommandContext
from engine.engine import Engine
from engine.hw.modbus import ModbusTcp
from engine.lang.api import SystemState
from engine.simdev import chromatography_map as chrom
from engine.simdev.modbus_server import serve_tcp, stop_server
from engine.simdev.modbus_sim import ModbusModelDevice, _chromatography
from engine.uod import Number, UodBuilder
from protocol.models import ControlAction
from tests.hw.conftest import wait_until
from tests.net import free_port

TIMEOUT = 0.6


@pytest.fixture
async def skid() -> AsyncIterator[tuple[ModbusModelDevice, int]]:
    device = ModbusModelDevice(_chromatography())
    port = free_port()
    server = await serve_tcp(device.store, "127.0.0.1", port)

    async def controller() -> None:  # the device's own loop, as `setpoint-sim modbus` runs it
        while True:
            device.watch(time.monotonic())
            await asyncio.sleep(0.02)

    task = asyncio.create_task(controller())
    try:
        yield device, port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stop_server(server)


def _set_pump(cmd: CommandContext, percent: float) -> None:
    cmd.set("PU01", percent)


def _engine(port: int) -> Engine:
    uod = UodBuilder("Watchdog", author_name="tests")
    conn = ModbusTcp(
        host="127.0.0.1",
        port=port,
        timeout=0.3,
        poll_interval=0.02,
        heartbeat=chrom.heartbeat(timeout=TIMEOUT, period=0.1),
    )
    uod.modbus(conn, (*chrom.SETPOINTS, chrom.FT01))
    uod.entry("PU01", unit="%", safe_value=0.0, minimum=0, maximum=100)
    uod.choice("Inlet", list(chrom.INLET_CODES), safe_value="None", codes=dict(chrom.INLET_CODES))
    uod.reading("FT01", unit="L/h")
    uod.command("PU01", _set_pump, argument=Number(["%"], minimum=0, maximum=100))
    return Engine(uod.build(), clock=RealClock(), method="PU01: 50 %\nWait: 1000 s\n")


async def _scan_until(engine: Engine, condition: object, what: str) -> None:
    def scanned() -> bool:
        engine.scan(engine.clock.monotonic())
        return bool(condition())  # type: ignore[operator]

    await wait_until(scanned, timeout=10.0, what=what)


async def test_a_tripped_device_pauses_the_run_and_stays_safe(
    skid: tuple[ModbusModelDevice, int],
) -> None:
    device, port = skid
    engine = _engine(port)
    await engine.start()
    try:
        engine.scan(engine.clock.monotonic())
        engine.control(ControlAction.START, "tests")
        await _scan_until(
            engine, lambda: device.store.get_value(chrom.PU01) == 50.0, "pump at 50 %"
        )
        # The scan hangs longer than the device's timeout: the device goes safe by itself.
        await wait_until(lambda: device.watchdog_tripped, timeout=5.0, what="watchdog trip")
        assert device.store.get_value(chrom.PU01) == 0.0
        await _scan_until(engine, lambda: engine.state is SystemState.PAUSED, "the run paused")
        errors = [e.message for e in engine.error_log if e.level == "error"]
        assert any("output PU01: the device holds 0.0, not the 50.0 written" in m for m in errors)
        engine.control(ControlAction.UNPAUSE, "tests")  # the engine asks for 50 % again
        await _scan_until(engine, lambda: engine.state is SystemState.PAUSED, "paused again")
        assert device.watchdog_tripped  # latched: the heartbeat is back, the trip is not reset
        assert device.store.get_value(chrom.PU01) == 0.0
    finally:
        await engine.stop()
