"""settle_outputs and stop() at shutdown: the device's registers, not the driver's word for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from engine.hw.base import OutputCheck, OutputResult
from engine.hw.modbus import ModbusHardware, ModbusRegister, ModbusTcp
from engine.hw.recovery import RecoveryPolicy
from engine.hw.serial_line import SerialHardware, SerialPort
from engine.simdev.instruments import BalanceSim, PumpSim
from engine.simdev.profiles import BALANCE_EXCHANGES, PUMP_EXCHANGES
from tests.hw.conftest import Peer, wait_until
from tests.hw.test_serial import Peer as PtyPeer

SLOW = RecoveryPolicy(reconnect_after=0.1, error_after=30.0, backoff_initial=0.05, backoff_max=0.2)
# Settling gives up at its own timeout (a fraction of a second here) when the device does not
# answer. A wall-clock bound near that timeout fails on a busy machine, so the tests bound it
# far above, only to catch a settle that waits for something else: the link's error_after
# (SLOW: 30 s), a device that never answers, or forever. That the timeout given was the one
# applied is in each failed result's detail ("not written within 0.5 s").
HANG = 20.0

PUMP = ModbusRegister(tag="pump", table="holding", address=0, data_type="float32", safe_value=0)
VALVE = ModbusRegister(tag="valve", table="coil", address=0, data_type="bool", safe_value=False)
TEMP = ModbusRegister(
    tag="temp", table="holding", address=4, data_type="int16", scale=0.1, safe_value=20.0
)
TRIM = ModbusRegister(tag="trim", table="holding", address=6, data_type="int16")  # no safe value
PV = ModbusRegister(tag="pv", table="input", address=0, data_type="float32")


def checks(results: list[OutputResult]) -> dict[str, tuple[Any, OutputCheck]]:
    return {r.tag: (r.value, r.check) for r in results}


def modbus(peer: Peer, **kw: Any) -> ModbusHardware:
    peer.store.set_raw(1, "holding", 0, [0] * 8)  # the gaps are read through
    for reg, value in ((PUMP, 0.0), (VALVE, False), (TEMP, 0.0), (TRIM, 0), (PV, 1.5)):
        peer.store.define(reg, value)
    conn = ModbusTcp(host="127.0.0.1", port=peer.port, timeout=0.2, poll_interval=0.02)
    return ModbusHardware(conn, [PUMP, VALVE, TEMP, TRIM, PV], policy=SLOW, **kw)


async def run_outputs(hw: ModbusHardware, peer: Peer) -> None:
    hw.write({"pump": 100.0, "valve": True, "temp": 37.5, "trim": 3})
    await wait_until(lambda: peer.store.get_value(PUMP) == 100.0, what="pump running")
    await wait_until(lambda: peer.store.get_value(TEMP) == pytest.approx(37.5))


async def test_modbus_safe_values_are_confirmed_by_reading_back(peer: Peer) -> None:
    hw = modbus(peer)
    await hw.start()
    try:
        await run_outputs(hw, peer)
        peer.store.define(VALVE, True)
        hw.write_safe_values()
        results = await hw.settle_outputs(2.0)
    finally:
        await hw.stop()
    assert checks(results) == {
        "pump": (0, OutputCheck.CONFIRMED),
        "valve": (False, OutputCheck.CONFIRMED),
        "temp": (20.0, OutputCheck.CONFIRMED),
        "trim": (3, OutputCheck.CONFIRMED),
    }
    assert all(r.safe for r in results)
    assert peer.store.get_value(PUMP) == 0.0
    assert peer.store.get_value(VALVE) is False
    assert peer.store.get_value(TEMP) == pytest.approx(20.0)


async def test_modbus_stop_sends_queued_safe_values_first(peer: Peer) -> None:
    """The bug that left a real pump running: stop() right after write_safe_values()."""
    hw = modbus(peer)
    await hw.start()
    await run_outputs(hw, peer)
    hw.write_safe_values()
    await hw.stop()
    assert peer.store.get_value(PUMP) == 0.0
    assert peer.store.get_value(VALVE) is False
    assert hw.pending_writes == 0


async def test_modbus_settle_on_a_stopped_driver_connects_and_confirms(peer: Peer) -> None:
    hw = modbus(peer, stop_grace=0.0)
    await hw.start()
    await run_outputs(hw, peer)
    await hw.stop()
    hw.write_safe_values()
    results = await hw.settle_outputs(2.0)
    assert checks(results)["pump"] == (0, OutputCheck.CONFIRMED)
    assert peer.store.get_value(PUMP) == 0.0


async def test_modbus_link_down_fails_within_the_timeout(peer: Peer) -> None:
    """The link is down: settling reports each safe value not written at its own timeout, not
    when the link would be declared in Error (SLOW: 30 s) or never."""
    hw = modbus(peer, stop_grace=0.0)
    await hw.start()
    try:
        await run_outputs(hw, peer)
        await peer.stop()
        hw.write_safe_values()
        results = await asyncio.wait_for(hw.settle_outputs(0.5), HANG)
    finally:
        await hw.stop()
    by_tag = {r.tag: r for r in results}
    for tag in ("pump", "valve", "temp"):
        assert by_tag[tag].check is OutputCheck.FAILED
        assert "not written within 0.5 s; connection" in by_tag[tag].detail
    assert by_tag["trim"].check is OutputCheck.WRITTEN  # accepted before the outage
    assert peer.store.get_value(PUMP) == 100.0


async def test_modbus_refusal_and_mismatch(peer: Peer) -> None:
    """The device refuses the pump's safe value and clamps the temperature to 25.0."""

    def device(dev: int, table: str, address: int, values: Any) -> ExcCodes | None:
        if table == "holding" and address == PUMP.address:
            peer.store.define(PUMP, 100.0)
            return ExcCodes.DEVICE_FAILURE
        if table == "holding" and address == TEMP.address and values[0] < 250:
            peer.store.define(TEMP, 25.0)
        return None

    hw = modbus(peer)
    await hw.start()
    try:
        await run_outputs(hw, peer)
        peer.store.on_write = device
        hw.write_safe_values()
        results = await hw.settle_outputs(2.0)
    finally:
        await hw.stop()
    by_tag = {r.tag: r for r in results}
    assert by_tag["pump"].check is OutputCheck.FAILED
    assert "refused" in by_tag["pump"].detail and "device failure" in by_tag["pump"].detail
    assert by_tag["temp"].check is OutputCheck.MISMATCH
    assert by_tag["temp"].detail == "the device holds 25.0"
    assert by_tag["valve"].check is OutputCheck.CONFIRMED
    assert peer.store.get_value(PUMP) == 100.0


async def test_modbus_slow_device_is_bounded(peer: Peer) -> None:
    """A device that takes each write but never answers: settle returns at its timeout."""
    hw = modbus(peer, stop_grace=0.0)
    answering = asyncio.Event()
    real_set = peer.store.async_setValues

    async def hung(*args: Any, **kwargs: Any) -> Any:
        await answering.wait()
        return await real_set(*args, **kwargs)

    await hw.start()
    try:
        await run_outputs(hw, peer)
        peer.store.async_setValues = hung  # type: ignore[method-assign]
        hw.write_safe_values()
        results = await asyncio.wait_for(hw.settle_outputs(0.3), HANG)
        assert not answering.is_set()  # it returned while the device still held every write
    finally:
        answering.set()
        await hw.stop()
    assert {r.check for r in results if r.tag != "trim"} == {OutputCheck.FAILED}
    assert all("within 0.3 s" in r.detail for r in results if r.tag != "trim")


async def test_modbus_safe_value_never_queued_is_reported(peer: Peer) -> None:
    hw = modbus(peer)
    await hw.start()
    try:
        hw.write({"trim": 4})
        results = await hw.settle_outputs(2.0)
    finally:
        await hw.stop()
    assert checks(results) == {
        "trim": (4, OutputCheck.CONFIRMED),
        "pump": (0, OutputCheck.FAILED),
        "valve": (False, OutputCheck.FAILED),
        "temp": (20.0, OutputCheck.FAILED),
    }


# ---- serial ----


@pytest.fixture
def pump() -> Iterator[tuple[PtyPeer, PumpSim]]:
    sim = PumpSim(clock=time.monotonic)
    peer = PtyPeer(sim.handle)
    try:
        yield peer, sim
    finally:
        peer.close()


def serial_pump(peer: PtyPeer, **kw: Any) -> SerialHardware:
    return SerialHardware(SerialPort(url=peer.dev.path, timeout=0.2), PUMP_EXCHANGES, **kw)


async def test_serial_safe_values_are_confirmed_by_read_exchanges(
    pump: tuple[PtyPeer, PumpSim],
) -> None:
    peer, sim = pump
    hw = serial_pump(peer, policy=SLOW)
    await hw.start()
    try:
        hw.write({"Pump Speed": 100.0, "Pump Command": "Run", "Pump Direction": "CCW"})
        await wait_until(lambda: sim.running and sim.speed_rpm == 100.0, what="pump running")
        hw.write_safe_values()
        results = await hw.settle_outputs(2.0)
    finally:
        await hw.stop()
    assert checks(results) == {
        "Pump Speed": (0.0, OutputCheck.CONFIRMED),
        "Pump Command": ("Stop", OutputCheck.CONFIRMED),
        "Pump Direction": ("CCW", OutputCheck.CONFIRMED),
    }
    assert (sim.running, sim.speed_rpm) == (False, 0.0)


async def test_serial_write_without_read_back_is_written() -> None:
    sim = BalanceSim(initial_g=5.0)
    peer = PtyPeer(sim.handle)
    hw = SerialHardware(SerialPort(url=peer.dev.path, timeout=0.2), BALANCE_EXCHANGES)
    try:
        await hw.start()
        hw.write({"Balance Tare": 1})
        results = await hw.settle_outputs(2.0)
        await hw.stop()
    finally:
        peer.close()
    assert checks(results) == {"Balance Tare": (1, OutputCheck.WRITTEN)}
    assert sim.tare_g == 5.0


async def test_serial_stop_sends_queued_safe_values_first(pump: tuple[PtyPeer, PumpSim]) -> None:
    peer, sim = pump
    hw = serial_pump(peer, policy=SLOW)
    await hw.start()
    hw.write({"Pump Speed": 100.0, "Pump Command": "Run"})
    await wait_until(lambda: sim.running, what="pump running")
    hw.write_safe_values()
    await hw.stop()
    assert (sim.running, sim.speed_rpm) == (False, 0.0)


async def test_serial_silent_instrument_fails_within_the_timeout(
    pump: tuple[PtyPeer, PumpSim],
) -> None:
    peer, sim = pump
    hw = serial_pump(peer, policy=SLOW, stop_grace=0.0)
    await hw.start()
    try:
        hw.write({"Pump Speed": 100.0, "Pump Command": "Run"})
        await wait_until(lambda: sim.running, what="pump running")
        peer.mode = "silent"
        hw.write_safe_values()
        results = await asyncio.wait_for(hw.settle_outputs(0.5), HANG)
    finally:
        await hw.stop()
    by_tag = {r.tag: r for r in results}
    assert by_tag["Pump Command"].check is OutputCheck.FAILED
    assert by_tag["Pump Speed"].check is OutputCheck.FAILED
    assert "not written within 0.5 s" in by_tag["Pump Command"].detail
    assert sim.running


async def test_serial_refused_write_fails(pump: tuple[PtyPeer, PumpSim]) -> None:
    peer, sim = pump
    hw = serial_pump(peer, policy=SLOW)
    await hw.start()
    try:
        hw.write({"Pump Speed": 900.0, "Pump Command": "Stop"})
        results = await hw.settle_outputs(2.0)
    finally:
        await hw.stop()
    by_tag = {r.tag: r for r in results}
    assert by_tag["Pump Speed"].check is OutputCheck.FAILED
    assert "instrument answered 'ER 2 range'" in by_tag["Pump Speed"].detail
    assert by_tag["Pump Command"].check is OutputCheck.CONFIRMED
    assert sim.speed_rpm == 0.0


def test_confirm_with_must_name_a_read_exchange() -> None:
    bad = PUMP_EXCHANGES[-1].model_copy(update={"confirm_with": "Pump Speed"})
    with pytest.raises(ValueError, match="confirm_with 'Pump Speed' is not a read exchange"):
        SerialHardware(SerialPort(url="loop://"), [*PUMP_EXCHANGES[:-1], bad])
