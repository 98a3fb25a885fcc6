"""`setpoint-sim` as a user runs it: real processes, real Modbus TCP and real ptys."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.hw.base import ConnectionState, Quality, WriteRejected
from engine.hw.composite import CompositeHardware
from engine.hw.modbus import ModbusHardware, ModbusTcp
from engine.hw.serial_line import SerialHardware
from engine.simdev import chromatography_map as chrom
from engine.simdev.modbus_sim import ModbusModelDevice
from engine.simdev.profiles import BALANCE_EXCHANGES, PUMP_EXCHANGES, balance_port, pump_port
from tests.hw.conftest import number, wait_until
from tests.net import free_port


class Sim:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.simdev.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def first_line(self, timeout: float = 10.0) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("simulator printed nothing")
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def sims() -> Iterator[list[Sim]]:
    started: list[Sim] = []
    try:
        yield started
    finally:
        for sim in started:
            sim.stop()


async def test_modbus_chromatography_device(sims: list[Sim]) -> None:
    port = free_port()
    sims.append(Sim("modbus", "--model", "chromatography", "--port", str(port)))
    assert sims[0].first_line() == f"modbus device: 127.0.0.1:{port} (chromatography, device id 1)"
    hw = ModbusHardware(
        ModbusTcp(host="127.0.0.1", port=port, poll_interval=0.05), chrom.CHROMATOGRAPHY_REGISTERS
    )
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["FT01"].quality is Quality.GOOD, timeout=10)
        snap = hw.snapshot()
        assert snap["Device Model"].value == "SP-CHROM"
        assert (snap["FT01"].value, snap["Pump Running"].value) == (0.0, False)
        beat = snap["Heartbeat"].value
        hw.write({"Inlet": chrom.INLET_CODES["VA01"], "PU01": 50.0})
        await wait_until(lambda: number(hw.snapshot()["FT01"].value) > 30.0, timeout=10)
        snap = hw.snapshot()
        assert snap["Pump Running"].value is True
        assert number(snap["PT01"].value) > 0.1
        assert snap["Heartbeat"].value != beat
        assert snap["CT01"].value == pytest.approx(1.5, abs=0.1)
        hw.write({"Inlet": 9})  # no such inlet: the device refuses it
        await wait_until(lambda: any(isinstance(e, WriteRejected) for e in hw.drain_events()))
        await wait_until(lambda: hw.snapshot()["Inlet"].value == 1)
        assert hw.connection_state is ConnectionState.OK
    finally:
        await hw.stop()


def test_model_device_refuses_out_of_range_setpoint() -> None:
    from engine.sim.chromatography import ChromatographyModel

    device = ModbusModelDevice(ChromatographyModel())
    device.store.define(chrom.PU01, 150.0)
    refused = device._on_write(1, "holding", 0, [0, 0])
    assert refused is not None
    assert device.store.get_value(chrom.PU01) == 0.0


async def test_serial_pump_fills_balance_across_processes(sims: list[Sim], tmp_path: Path) -> None:
    sims.append(Sim("serial", "--profile", "balance", "--state-dir", str(tmp_path)))
    sims.append(Sim("serial", "--profile", "pump", "--state-dir", str(tmp_path)))
    paths = []
    for sim in sims:
        line = sim.first_line()
        assert line.startswith("serial device: /dev/pts/")
        paths.append(line.removeprefix("serial device: "))
    hw = CompositeHardware(
        [
            SerialHardware(balance_port(paths[0]), BALANCE_EXCHANGES),
            SerialHardware(pump_port(paths[1]), PUMP_EXCHANGES),
        ]
    )
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["Balance Weight"].quality is Quality.GOOD)
        hw.write({"Balance Tare": 1})
        await wait_until(lambda: hw.snapshot()["Balance Weight"].value == 0.0)
        hw.write({"Pump Speed": 600.0, "Pump Command": "Run"})
        await wait_until(lambda: hw.snapshot()["Pump Flow"].value == 480.0)
        await wait_until(lambda: number(hw.snapshot()["Balance Weight"].value) > 2.0, timeout=10)
        hw.write({"Pump Command": "Stop"})
        await wait_until(lambda: hw.snapshot()["Pump State"].value == "STOP")
        assert hw.connection_state is ConnectionState.OK
        assert (tmp_path / "pump.json").exists()
    finally:
        await hw.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["modbus", "--model", "nope"], "invalid choice: 'nope'"),
        (["serial", "--profile", "scale"], "invalid choice: 'scale'"),
        (["modbus", "--model", "chromatography", "--port", "70000"], "--port must be 1..65535"),
        (["serial"], "--profile"),
    ],
)
def test_bad_command_lines_are_refused(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.simdev.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr


def test_port_in_use_is_a_clear_error(sims: list[Sim]) -> None:
    port = free_port()
    sims.append(Sim("modbus", "--model", "chromatography", "--port", str(port)))
    sims[0].first_line()
    done = subprocess.run(
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
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
