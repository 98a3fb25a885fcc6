"""The device-side watchdog end to end: when the engine's heartbeat stops without safe values
being written (a stopped driver, kill -9 of a real engine), the simulated skid goes safe itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes

from engine.hw.base import Quality
from engine.hw.modbus import ModbusHardware, ModbusTcp
from engine.hw.serial_line import SerialHardware, SerialPort
from engine.sim.chromatography import ChromatographyModel
from engine.simdev import chromatography_map as chrom
from engine.simdev.instruments import PumpSim
from engine.simdev.modbus_sim import ModbusModelDevice
from engine.simdev.profiles import PUMP_EXCHANGES
from engine.simdev.serial_server import PtyDevice
from tests.hw.conftest import wait_until
from tests.net import free_port
from tests.simdev.test_simulators import Sim

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def beat(device: ModbusModelDevice, value: int) -> None:
    device.store.define(chrom.WATCHDOG_COUNTER, value)
    device._on_write(1, "holding", chrom.WATCHDOG_COUNTER.address, [value])


def test_device_watchdog_trips_to_safe_state_latched_until_reset() -> None:
    clock = FakeClock()
    model = ChromatographyModel()
    device = ModbusModelDevice(model, clock=clock, watchdog_timeout=2.0)
    clock.now += 60
    assert device.watch(clock.now) is None, "armed before any engine fed it"
    device.store.define(chrom.PU01, 80.0)
    device._on_write(1, "holding", chrom.PU01.address, [0, 0])
    device.store.define(chrom.INLET, 1)
    device._on_write(1, "holding", chrom.INLET.address, [1])
    beat(device, 1)
    for value in range(2, 6):  # beats every 1.5 s keep it quiet
        clock.now += 1.5
        beat(device, value)
        assert device.watch(clock.now) is None
    clock.now += 1.5
    beat(device, 5)  # written, but not changed: no beat
    assert device.watch(clock.now) is None
    clock.now += 0.6
    news = device.watch(clock.now)
    assert news is not None and "watchdog tripped: no heartbeat for 2.1 s (timeout 2 s)" in news
    assert "PU01 = 0.0, Inlet = 0" in news
    assert device.store.get_value(chrom.PU01) == 0.0
    assert device.store.get_value(chrom.INLET) == 0
    assert device.store.get_value(chrom.WATCHDOG_TRIPPED) is True
    assert (model.inlet, model.pump_setpoint) == ("None", 0.0)
    assert device.watch(clock.now + 10) is None, "said once"
    beat(device, 6)  # the heartbeat is back: the trip stays latched
    assert device.store.get_value(chrom.WATCHDOG_TRIPPED) is True
    device.store.define(chrom.PU01, 80.0)
    assert device._on_write(1, "holding", chrom.PU01.address, [0, 0]) is ExcCodes.DEVICE_FAILURE
    assert device.store.get_value(chrom.PU01) == 0.0 and model.pump_setpoint == 0.0
    device.store.define(chrom.WATCHDOG_RESET, True)  # the operator's reset
    assert device._on_write(1, "coil", chrom.WATCHDOG_RESET.address, [True]) is None
    assert device.store.get_value(chrom.WATCHDOG_TRIPPED) is False
    assert device.store.get_value(chrom.WATCHDOG_RESET) is False
    device.store.define(chrom.PU01, 80.0)
    assert device._on_write(1, "holding", chrom.PU01.address, [0, 0]) is None
    assert model.pump_setpoint == 80.0
    assert device.watch(clock.now + 1.0) is None, "the timer restarted at the reset"


@pytest.fixture
async def skid() -> AsyncIterator[tuple[Sim, int, ModbusHardware]]:
    """A real `setpoint-sim modbus` process and a reader that never feeds its watchdog."""
    port = free_port()
    sim = Sim("modbus", "--model", "chromatography", "--port", str(port))
    reader = ModbusHardware(
        ModbusTcp(host="127.0.0.1", port=port, poll_interval=0.05), chrom.CHROMATOGRAPHY_REGISTERS
    )
    try:
        assert sim.first_line().startswith("modbus device: 127.0.0.1:")
        await reader.start()
        yield sim, port, reader
    finally:
        await reader.stop()
        sim.stop()


def device_holds(reader: ModbusHardware, pump: float, inlet: int, tripped: bool) -> bool:
    snap = reader.snapshot()
    return (
        snap["PU01"].quality is Quality.GOOD
        and snap["PU01"].value == pump
        and snap["Inlet"].value == inlet
        and snap["Watchdog Tripped"].value is tripped
    )


async def test_stopped_heartbeat_puts_the_simulator_in_its_safe_state(
    skid: tuple[Sim, int, ModbusHardware],
) -> None:
    sim, port, reader = skid
    timeout = 1.0
    hw = ModbusHardware(
        ModbusTcp(
            host="127.0.0.1",
            port=port,
            poll_interval=0.05,
            heartbeat=chrom.heartbeat(timeout=timeout, period=0.2),
        ),
        chrom.CHROMATOGRAPHY_REGISTERS,
    )
    await hw.start()
    try:
        hw.write({"PU01": 50.0, "Inlet": chrom.INLET_CODES["VA01"]})
        await wait_until(lambda: device_holds(reader, 50.0, 1, False), what="pump running")
        began = time.monotonic()
        await wait_until(  # the engine scans for three watchdog timeouts: no trip
            lambda: hw.snapshot() is not None and time.monotonic() - began > 3 * timeout
        )
        assert device_holds(reader, 50.0, 1, False)
        assert hw.heartbeats >= 10
    finally:
        await hw.stop()  # abrupt: no safe values written, the heartbeat just stops
    stopped = time.monotonic()
    await wait_until(lambda: device_holds(reader, 0.0, 0, True), timeout=timeout + 2.0)
    assert time.monotonic() - stopped >= timeout - 0.2, "tripped before its timeout"
    assert "watchdog tripped: no heartbeat" in sim.first_line()


@pytest.mark.slow
async def test_kill_9_of_a_running_engine_is_covered_by_the_device(
    skid: tuple[Sim, int, ModbusHardware], tmp_path: Path
) -> None:
    sim, port, reader = skid
    method = tmp_path / "run.pcode"
    method.write_text("Inlet: VA01\nPU01: 60 %\nWait: 1000 s\n")
    engine = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "run",
            "--uod",
            str(ROOT / "uod_examples" / "chromatography_modbus.py"),
            "--method",
            str(method),
            "--start",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=ROOT,
        env={**os.environ, "SETPOINT_MODBUS_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_until(lambda: device_holds(reader, 60.0, 1, False), timeout=30, what="run")
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait(10)
        killed = time.monotonic()
        await wait_until(lambda: device_holds(reader, 0.0, 0, True), timeout=3.0 + 2.0)
        assert time.monotonic() - killed >= 2.5, "tripped before its 3 s timeout"
        assert "watchdog tripped: no heartbeat" in sim.first_line()
    finally:
        if engine.poll() is None:
            os.kill(engine.pid, signal.SIGKILL)
            engine.wait(10)


def test_pump_stops_itself_after_its_comm_timeout() -> None:
    clock = FakeClock()
    pump = PumpSim(clock=clock, comm_timeout=2.0)
    assert pump.handle("SPEED 100") == "OK" and pump.handle("RUN") == "OK"
    clock.now += 1.9
    assert pump.watch() is None
    assert pump.handle("STATUS?") == "STATUS RUN 100.0 CW"  # any command is traffic
    clock.now += 1.9
    assert pump.watch() is None and pump.running
    clock.now += 0.2
    assert pump.watch() == "no command for 2.1 s (timeout 2 s): pump stopped"
    assert not pump.running and pump.volume_ml() == pytest.approx(100 * 0.8 * 4.0 / 60)
    assert pump.watch() is None
    assert PumpSim(clock=clock).watch(clock.now + 99) is None  # no timeout: runs on


async def test_serial_pump_stops_when_the_engine_goes_quiet() -> None:
    said: list[str] = []
    pump = PumpSim(clock=time.monotonic, comm_timeout=0.5)

    def tick() -> None:
        if (news := pump.watch()) is not None:
            said.append(news)

    dev = PtyDevice(pump.handle, tick=tick)
    thread = dev.start_thread()
    hw = SerialHardware(SerialPort(url=dev.path, timeout=0.2), PUMP_EXCHANGES)
    try:
        await hw.start()
        hw.write({"Pump Speed": 100.0, "Pump Command": "Run"})
        await wait_until(lambda: hw.snapshot()["Pump State"].value == "RUN", what="running")
        began = time.monotonic()
        # Scanning (each snapshot lets a poll go out): the polls keep the pump running.
        await wait_until(lambda: hw.snapshot() is not None and time.monotonic() - began > 1.5)
        assert pump.running
        await hw.stop()  # abrupt: no safe values
        stopped = time.monotonic()
        await wait_until(lambda: not pump.running, timeout=0.5 + 1.0, what="pump stopped")
        assert time.monotonic() - stopped >= 0.3
        assert said and "pump stopped" in said[0]
    finally:
        await hw.stop()
        dev.close()
        thread.join(2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["modbus", "--model", "chromatography", "--watchdog", "70"],
            "--watchdog must be 0..65.535",
        ),
        (["serial", "--profile", "balance", "--watchdog", "2"], "applies to --profile pump only"),
        (["serial", "--profile", "pump", "--watchdog", "-1"], "seconds >= 0"),
    ],
)
def test_bad_watchdog_options_are_refused(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.simdev.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert message in done.stderr
