"""Safe values reach the DEVICE however they are declared, and only fresh read-backs confirm them.

Real pymodbus peers; the assertions read the device's registers, not the engine's tags.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from engine.clock import RealClock
from engine.engine import Engine
from engine.hw.base import ConnectionState, OutputCheck, Quality
from engine.hw.modbus import ModbusHardware, ModbusTcp
from engine.shutdown import EXIT_OK, ShutdownControl, assess, shut_down
from engine.simdev import chromatography_map as chrom
from engine.simdev.modbus_server import serve_tcp, stop_server
from engine.simdev.modbus_sim import ModbusModelDevice, _chromatography
from engine.uod import UodBuilder
from tests.hw.conftest import Peer, wait_until
from tests.hw.test_settle import PUMP, PV, TRIM, checks, modbus
from tests.net import free_port

# As uod_examples/real_hardware_template.py declares them: safe values on the tags only.
BARE = tuple(r.model_copy(update={"safe_value": None}) for r in chrom.SETPOINTS)


@pytest.fixture
async def skid() -> AsyncIterator[tuple[ModbusModelDevice, int]]:
    device = ModbusModelDevice(_chromatography())
    port = free_port()
    server = await serve_tcp(device.store, "127.0.0.1", port)
    try:
        yield device, port
    finally:
        await stop_server(server)


def _engine(port: int) -> Engine:
    uod = UodBuilder("Tag safe values", author_name="tests")
    conn = ModbusTcp(host="127.0.0.1", port=port, timeout=0.3, poll_interval=0.02)
    uod.modbus(conn, (*BARE, chrom.FT01))
    uod.entry("PU01", unit="%", safe_value=0.0, minimum=0, maximum=100)
    uod.choice("Inlet", list(chrom.INLET_CODES), safe_value="None", codes=dict(chrom.INLET_CODES))
    uod.reading("FT01", unit="L/h")
    return Engine(uod.build(), clock=RealClock())


async def test_tag_safe_values_are_forced_to_a_device_changed_behind_the_engine_s_back(
    skid: tuple[ModbusModelDevice, int],
) -> None:
    """The engine last asked for PU01 = 0 (its safe value at start); another master then starts
    the pump. The shutdown must write 0 again, not skip it as "unchanged"."""
    device, port = skid
    engine = _engine(port)
    await engine.start()
    engine.scan(engine.clock.monotonic())
    hw = engine.hardware
    assert isinstance(hw, ModbusHardware)
    await wait_until(lambda: hw.pending_writes == 0 and hw.cycles > 2, what="start-up writes")
    device.store.define(chrom.PU01, 100.0)  # a local panel or a second master
    device.store.define(chrom.INLET, chrom.INLET_CODES["VA02"])
    report = await shut_down(engine, ShutdownControl(), user="tests", safe_timeout=2.0)
    assert device.store.get_value(chrom.PU01) == 0.0
    assert device.store.get_value(chrom.INLET) == chrom.INLET_CODES["None"]
    assert report.code == EXIT_OK, report.assessment
    assert sorted(report.assessment.safe) == ["Inlet", "PU01"]


async def test_one_value_the_device_cannot_take_does_not_hold_back_the_others(peer: Peer) -> None:
    hw = modbus(peer)
    await hw.start()
    try:
        hw.write({"pump": 100.0})
        await wait_until(lambda: peer.store.get_value(PUMP) == 100.0)
        with pytest.raises(ValueError, match="'pv' is in table 'input', read-only"):
            hw.write_safe({"pv": 0.0, "pump": 0.0})
        with pytest.raises(
            ValueError,
            match=r"declared for tag 'nope'; .* tag 'pv' is in table 'input', read-only$",
        ):
            hw.write({"nope": 1, "pv": 0.0, "trim": 2})
        results = await hw.settle_outputs(2.0)
    finally:
        await hw.stop()
    assert peer.store.get_value(PUMP) == 0.0
    assert peer.store.get_value(TRIM) == 2
    assert checks(results)["pump"] == (0.0, OutputCheck.CONFIRMED)
    assert PV.tag not in checks(results)


async def test_only_a_read_back_after_the_settling_began_confirms(peer: Peer) -> None:
    """The driver read trim = 3 back, was stopped, then the device changed to 5: settling must
    read again and see the mismatch, not trust the old read-back."""
    hw = modbus(peer, stop_grace=0.0)
    await hw.start()
    hw.write({"trim": 3})
    await wait_until(lambda: hw.snapshot()[TRIM.tag].value == 3, what="trim read back")
    await hw.stop()
    peer.store.define(TRIM, 5)
    results = await hw.settle_outputs(2.0)
    assert checks(results)["trim"] == (3, OutputCheck.MISMATCH)
    assert peer.store.get_value(TRIM) == 5


async def test_a_mismatch_stays_unsafe_when_the_link_is_lost(peer: Peer) -> None:
    """An interlock holds the pump at 100 % whatever is written; then the link drops. The
    output is not safe, and settling again must not call it so from the old read-back."""
    hw = modbus(peer, stop_grace=0.0)
    await hw.start()
    try:
        hw.write({"pump": 100.0})
        await wait_until(lambda: peer.store.get_value(PUMP) == 100.0, what="pump running")

        def interlock(dev: int, table: str, address: int, values: object) -> None:
            if table == "holding" and address == PUMP.address:
                peer.store.define(PUMP, 100.0)

        peer.store.on_write = interlock
        hw.write_safe_values()
        first = checks(await hw.settle_outputs(2.0))["pump"]
        await peer.stop()
        await wait_until(lambda: hw.connection_state is not ConnectionState.OK, what="link lost")
        results = await hw.settle_outputs(0.3)
    finally:
        await hw.stop()
    assert first == (0, OutputCheck.MISMATCH)
    pump = next(r for r in results if r.tag == "pump")
    assert pump.check is OutputCheck.MISMATCH
    assert pump.detail.startswith("state unknown: last seen 100.0; connection Reconnect")
    assert peer.store.get_value(PUMP) == 100.0
    assert assess(results, {"pump": 0}).unsafe


async def test_an_unexpected_driver_error_is_a_lost_link_and_the_worker_carries_on(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the poll task (here: storing a read fails once) must not leave old values
    looking live and writes unsent: Error at once (the run pauses), then a reconnect."""
    hw = modbus(peer)
    await hw.start()
    store = hw._store
    failures = [RuntimeError("odd bytes from the device")]

    def buggy(*args: object) -> None:
        if failures:
            raise failures.pop()
        store(*args)  # type: ignore[arg-type]

    try:
        await wait_until(lambda: hw.snapshot()[PV.tag].quality is Quality.GOOD)
        monkeypatch.setattr(hw, "_store", buggy)
        events: list[object] = []

        def state_after_fault() -> bool:
            events.extend(hw.drain_events())
            return any(getattr(e, "new", None) is ConnectionState.ERROR for e in events)

        await wait_until(state_after_fault, what="Error reported")
        assert "driver error: RuntimeError: odd bytes from the device" in str(events)
        await wait_until(lambda: hw.connection_state is ConnectionState.OK, what="recovered")
        hw.write({"pump": 42.0})
        await wait_until(lambda: peer.store.get_value(PUMP) == 42.0, what="write after recovery")
        assert hw.snapshot()[PV.tag].quality is Quality.GOOD
    finally:
        await hw.stop()


async def test_a_worker_found_dead_turns_every_reading_bad(peer: Peer) -> None:
    hw = modbus(peer)
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()[PV.tag].quality is Quality.GOOD)
        task = hw._task
        assert task is not None
        task.cancel()
        await wait_until(task.done)
        assert hw.snapshot()[PV.tag].quality is Quality.BAD
        assert hw.connection_state is ConnectionState.ERROR
        assert "the I/O worker ended" in str(hw.drain_events())
    finally:
        await hw.stop()
