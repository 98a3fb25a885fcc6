"""`setpoint-engine run` ended by a signal leaves the DEVICE at its safe values.

The engine runs as a real process against the real device simulators (`setpoint-sim modbus`,
`setpoint-sim serial`); after the signal the test reads the device itself (Modbus registers, the
pump's own answer on its serial line), never the engine's tags.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial
from pymodbus.client import ModbusTcpClient

from engine.simdev import chromatography_map as chrom
from tests.cli.conftest import EXAMPLES, Running, free_port, tool

pytestmark = pytest.mark.slow

# SIGHUP: a closed terminal or a dropped SSH session; SIGQUIT: Ctrl+\\.
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT]


def until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[list[Running]]:
    started: list[Running] = []
    try:
        yield started
    finally:
        for running in reversed(started):
            running.kill()


def _start(processes: list[Running], argv: list[str], **kwargs: object) -> Running:
    running = Running(argv, **kwargs)  # type: ignore[arg-type]
    processes.append(running)
    return running


# ---- Modbus: the chromatography skid --------------------------------------------------------


class Skid:
    """The simulated skid's setpoint registers, read over Modbus as any client would."""

    sim: Running

    def __init__(self, port: int) -> None:
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
        assert self.client.connect()  # type: ignore[no-untyped-call]  # pymodbus: ModbusTcpClient.connect unannotated

    def setpoints(self) -> tuple[float, int]:
        reply = self.client.read_holding_registers(0, count=3, device_id=chrom.DEVICE_ID)
        assert not reply.isError(), reply
        pump = struct.unpack(">f", struct.pack(">HH", *reply.registers[:2]))[0]
        return round(pump, 3), reply.registers[2]

    def tripped(self) -> bool:
        """The device's own watchdog went safe (3 s without the engine's heartbeat): the safe
        values the test sees must come from the engine, so this must not have happened."""
        address = chrom.WATCHDOG_TRIPPED.address
        reply = self.client.read_discrete_inputs(address, count=1, device_id=chrom.DEVICE_ID)
        assert not reply.isError(), reply
        return bool(reply.bits[0])


@pytest.fixture
def skid(processes: list[Running]) -> Iterator[tuple[int, Skid]]:
    port = free_port()
    device = _start(
        processes,
        [tool("setpoint-sim"), "modbus", "--model", "chromatography", "--port", str(port)],
    )
    device.wait_line("^modbus device: ", stream="stdout")
    client = Skid(port)
    client.sim = device
    try:
        yield port, client
    finally:
        client.client.close()  # type: ignore[no-untyped-call]  # pymodbus: ModbusTcpClient.close unannotated


def _chromatography(processes: list[Running], port: int, tmp_path: Path, *extra: str) -> Running:
    return _start(
        processes,
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "chromatography_modbus.py"),
            "--method",
            str(EXAMPLES / "chromatography_modbus.pcode"),
            "--start",
            *extra,
        ],
        env={"SETPOINT_MODBUS_HOST": "127.0.0.1", "SETPOINT_MODBUS_PORT": str(port)},
        cwd=tmp_path,
    )


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_leaves_the_modbus_device_safe(
    signum: int, skid: tuple[int, Skid], processes: list[Running], tmp_path: Path
) -> None:
    port, device = skid
    engine = _chromatography(processes, port, tmp_path)
    until(lambda: device.setpoints() == (100.0, chrom.INLET_CODES["VA01"]), what="pump at 100 %")
    os.kill(engine.proc.pid, signum)
    assert engine.proc.wait(30) == 0
    assert device.setpoints() == (0.0, chrom.INLET_CODES["None"])
    assert not device.tripped(), device.sim.stdout
    engine.wait_line(r"safe values confirmed for 2 output\(s\)")
    engine.wait_line(r"run \S+ stopped", stream="stdout")


def test_second_ctrl_c_waits_for_the_safe_values_and_skips_the_flush(
    skid: tuple[int, Skid], processes: list[Running], tmp_path: Path
) -> None:
    """With an aggregator that never answers, the flush would wait its full 10 s; Ctrl+C again
    ends the shutdown early, but only with the device safe."""
    port, device = skid
    token = tmp_path / "token"
    token.write_text("not-checked-nobody-listens\n")
    engine = _chromatography(
        processes,
        port,
        tmp_path,
        "--aggregator",
        f"ws://127.0.0.1:{free_port()}",
        "--token-file",
        str(token),
    )
    until(lambda: device.setpoints() == (100.0, chrom.INLET_CODES["VA01"]), what="pump at 100 %")
    first = time.monotonic()
    os.kill(engine.proc.pid, signal.SIGINT)
    engine.wait_line("stopping the run and writing safe values")
    os.kill(engine.proc.pid, signal.SIGINT)
    assert engine.proc.wait(30) == 0
    assert time.monotonic() - first < 9.0  # the 10 s flush was not waited for
    assert device.setpoints() == (0.0, chrom.INLET_CODES["None"])
    assert not device.tripped(), device.sim.stdout
    engine.wait_line(r"safe values confirmed for 2 output\(s\)")
    engine.wait_line("the safe values are written first|not waiting for the aggregator")


# ---- serial: the dosing unit ----------------------------------------------------------------


def _instrument(processes: list[Running], profile: str, state: Path) -> str:
    sim = _start(
        processes,
        [tool("setpoint-sim"), "serial", "--profile", profile, "--state-dir", str(state)],
    )
    return sim.wait_line("^serial device: ", stream="stdout").split(": ", 1)[1].strip()


def _pump_flow(state: Path) -> float:
    try:
        return float(json.loads((state / "pump.json").read_text())["flow_ml_min"])
    except (OSError, ValueError, KeyError):
        return 0.0


def _ask_pump(path: str, request: str) -> str:
    """The pump's own answer on its serial line (the engine has let go of the port)."""
    with serial.serial_for_url(path, baudrate=9600, timeout=2) as port:
        port.reset_input_buffer()
        port.write(f"{request}\r\n".encode())
        answer: bytes = port.readline()
        return answer.decode().strip()


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_signal_leaves_the_serial_pump_stopped(
    signum: int, processes: list[Running], tmp_path: Path
) -> None:
    state = tmp_path / "instruments"
    pump = _instrument(processes, "pump", state)
    balance = _instrument(processes, "balance", state)
    engine = _start(
        processes,
        [
            tool("setpoint-engine"),
            "run",
            "--uod",
            str(EXAMPLES / "dosing.py"),
            "--method",
            str(EXAMPLES / "dosing.pcode"),
            "--start",
        ],
        env={"SETPOINT_PUMP_PORT": pump, "SETPOINT_BALANCE_PORT": balance},
        cwd=tmp_path,
    )
    until(lambda: _pump_flow(state) > 100.0, what="pump at 120 mL/min")
    os.kill(engine.proc.pid, signum)
    assert engine.proc.wait(30) == 0
    assert _ask_pump(pump, "STATUS?").startswith("STATUS STOP 0.0 ")
    assert _pump_flow(state) == 0.0
    engine.wait_line(r"safe values confirmed for \d+ output\(s\)")
