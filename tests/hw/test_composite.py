"""CompositeHardware over two real serial peers (the dosing unit's balance and pump)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from engine.hw.base import (
    ConnectionState,
    HardwareEvent,
    OutputCheck,
    OutputResult,
    Quality,
    Reading,
    ScalarValue,
)
from engine.hw.composite import CompositeHardware, CompositeWriteError
from engine.hw.recovery import RecoveryPolicy
from engine.hw.serial_line import SerialHardware, SerialPort
from engine.simdev.instruments import BalanceSim, PumpSim
from engine.simdev.profiles import BALANCE_EXCHANGES, PUMP_EXCHANGES
from engine.simdev.serial_server import PtyDevice
from tests.hw.conftest import number, wait_until
from tests.hw.test_serial import Peer


async def test_pump_fills_balance_through_one_composite() -> None:
    pump = PumpSim(clock=time.monotonic)
    balance = BalanceSim(pumped_ml=pump.volume_ml)
    devices = [PtyDevice(balance.handle), PtyDevice(pump.handle)]
    threads = [d.start_thread() for d in devices]
    policy = RecoveryPolicy(error_after=2.0, reconnect_after=0.1)
    hw = CompositeHardware(
        [
            SerialHardware(
                SerialPort(url=devices[0].path, timeout=0.3), BALANCE_EXCHANGES, policy=policy
            ),
            SerialHardware(
                SerialPort(url=devices[1].path, timeout=0.3), PUMP_EXCHANGES, policy=policy
            ),
        ]
    )
    await hw.start()
    try:
        hw.write({"Pump Speed": 600.0, "Pump Command": "Run"})
        await wait_until(lambda: number(hw.snapshot()["Balance Weight"].value) > 1.0, timeout=5)
        await wait_until(lambda: hw.snapshot()["Pump State"].value == "RUN")
        assert hw.connection_state is ConnectionState.OK
        hw.write_safe_values()
        await wait_until(lambda: hw.snapshot()["Pump State"].value == "STOP")
        with pytest.raises(KeyError, match="no hardware part declares tag 'Valve'"):
            hw.write({"Valve": 1})
        devices[0].close()  # the balance cable is pulled: only the balance part degrades
        await wait_until(lambda: hw.connection_state is ConnectionState.ERROR, timeout=5)
        snap = hw.snapshot()
        assert snap["Balance Weight"].quality is Quality.BAD
        assert snap["Pump State"].quality is Quality.GOOD
        sources = {e.source for e in hw.drain_events()}
        assert sources == {f"serial {devices[0].path}"}
    finally:
        await hw.stop()
        for d in devices:
            d.close()
        for t in threads:
            t.join(2)


def test_duplicate_tags_across_parts_are_refused() -> None:
    a = SerialHardware(SerialPort(url="loop://"), BALANCE_EXCHANGES)
    b = SerialHardware(SerialPort(url="loop://"), BALANCE_EXCHANGES)
    with pytest.raises(ValueError, match="declared by two hardware parts"):
        CompositeHardware([a, b])
    with pytest.raises(ValueError, match="at least one part"):
        CompositeHardware([])


class _BrokenPart:
    """A driver whose writes always fail (a bug, a closed port): the other parts must not care."""

    name = "broken part"
    connection_state = ConnectionState.OK

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def snapshot(self) -> Mapping[str, Reading]:
        return {"Broken": Reading(None, Quality.BAD, 0.0)}

    def write(self, values: Mapping[str, ScalarValue]) -> None:
        raise RuntimeError("driver bug")

    def write_safe_values(self) -> None:
        raise RuntimeError("driver bug")

    def _safe_values(self) -> dict[str, ScalarValue]:
        return {"Broken": 0}

    async def settle_outputs(self, timeout: float) -> list[OutputResult]:
        raise RuntimeError("settle bug")

    def drain_events(self) -> list[HardwareEvent]:
        return []


def test_a_failing_part_does_not_stop_writes_to_the_others() -> None:
    pump = SerialHardware(SerialPort(url="loop://"), PUMP_EXCHANGES)
    hw = CompositeHardware([_BrokenPart(), pump])
    with pytest.raises(CompositeWriteError, match="broken part: RuntimeError: driver bug"):
        hw.write({"Broken": 1, "Pump Speed": 10.0})
    assert pump.pending_writes == 1
    with pytest.raises(CompositeWriteError, match="safe values failed on 1 part"):
        hw.write_safe_values()
    assert pump.pending_writes == 1 + 2  # Pump Command and Pump Speed safe values


def test_errors_of_several_parts_are_combined() -> None:
    pump = SerialHardware(SerialPort(url="loop://"), PUMP_EXCHANGES, name="pump")
    balance = SerialHardware(SerialPort(url="loop://"), BALANCE_EXCHANGES, name="balance")
    hw = CompositeHardware([pump, balance])
    with pytest.raises(CompositeWriteError) as caught:
        hw.write({"Pump Command": "Fast", "Balance Weight": 1})
    assert "failed on 2 part(s)" in str(caught.value)
    assert "pump: ValueError" in str(caught.value)
    assert "balance: ValueError" in str(caught.value)


async def test_a_part_whose_settling_raises_does_not_spoil_the_others() -> None:
    sim = PumpSim(clock=time.monotonic)
    peer = Peer(sim.handle)
    part = SerialHardware(SerialPort(url=peer.dev.path, timeout=0.2), PUMP_EXCHANGES)
    hw = CompositeHardware([_BrokenPart(), part])
    await hw.start()
    try:
        hw.write({"Pump Speed": 300.0, "Pump Command": "Run"})
        await wait_until(lambda: sim.running, what="pump running")
        with pytest.raises(CompositeWriteError):
            hw.write_safe_values()
        results = {r.tag: r for r in await hw.settle_outputs(2.0)}
    finally:
        await hw.stop()
        peer.close()
    assert not sim.running and sim.speed_rpm == 0.0  # the device itself
    assert results["Pump Command"].check is OutputCheck.CONFIRMED
    assert results["Broken"].check is OutputCheck.FAILED
    assert "settling failed: broken part: RuntimeError: settle bug" in results["Broken"].detail
