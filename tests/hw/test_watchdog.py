"""The engine's half of the device watchdog: Heartbeat declarations and the heartbeat writes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError
from pymodbus.constants import ExcCodes

from engine.hw.base import ConnectionState, OutputCheck, WriteRejected
from engine.hw.modbus import Heartbeat, ModbusHardware, ModbusRegister, ModbusTcp
from engine.hw.recovery import RecoveryPolicy
from engine.hw.serial_line import SerialHardware, SerialPort
from engine.hw.watchdog import HeartbeatState
from engine.simdev.instruments import PumpSim
from engine.simdev.profiles import PUMP_EXCHANGES
from engine.simdev.serial_server import PtyDevice
from tests.hw.conftest import Peer, wait_until

FAST = RecoveryPolicy(reconnect_after=0.1, error_after=30.0, backoff_initial=0.05, backoff_max=0.2)
PV = ModbusRegister(tag="pv", table="input", address=0)
BEAT = ModbusRegister(tag="beat", table="holding", address=10)
LIMIT = ModbusRegister(tag="limit", table="holding", address=11)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"table": "coil"}, "a coil heartbeat can only toggle"),
        ({"timeout": 0.5, "period": 0.5}, "must be at least twice period"),
        ({"timeout_address": 11}, "timeout_address given without timeout"),
        ({"timeout": 100.0, "timeout_address": 11}, "100000 counts of 0.001 s"),
        ({"timeout": 3.0, "timeout_address": 10}, "are the same register"),
        ({"period": 0}, "period"),
        ({"address": 70000}, "address"),
        ({"mode": "random"}, "mode"),
    ],
)
def test_bad_heartbeat_declarations(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Heartbeat.model_validate({"address": 10, **fields})


def test_heartbeat_registers_cannot_be_tags() -> None:
    hb = Heartbeat(address=10, timeout=3.0, timeout_address=11)
    conn = ModbusTcp(host="127.0.0.1", heartbeat=hb)
    with pytest.raises(ValueError, match="heartbeat address 10 \\(holding\\) overlaps register"):
        ModbusHardware(conn, [PV, BEAT])
    with pytest.raises(ValueError, match="timeout_address 11 \\(holding\\) overlaps register"):
        ModbusHardware(conn, [PV, LIMIT])
    ModbusHardware(conn, [PV, BEAT.model_copy(update={"device_id": 2})])  # another device


def test_heartbeat_state_beats_only_after_a_scan() -> None:
    state = HeartbeatState(Heartbeat(address=0, period=1.0))
    assert state.due(0.0) is None  # no scan yet
    state.scanned()
    assert state.due(0.0) == 1
    state.written(1, 0.0)
    state.scanned()
    assert state.due(0.5) is None  # not yet due
    assert state.due(1.0) == 2
    state.written(2, 1.0)
    assert state.due(5.0) is None  # due, but the scan has not read since: a hung scan
    state.value = 65535
    state.scanned()
    assert state.due(5.0) == 0
    toggle = HeartbeatState(Heartbeat(address=0, table="coil", mode="toggle"))
    toggle.scanned()
    assert toggle.due(0.0) == 1
    toggle.written(1, 0.0)
    toggle.scanned()
    assert toggle.due(1.0) == 0


def driver(peer: Peer, hb: Heartbeat) -> ModbusHardware:
    peer.store.define(PV, 7)
    peer.store.set_raw(1, "holding", 10, [0, 0])
    conn = ModbusTcp(
        host="127.0.0.1", port=peer.port, timeout=0.3, poll_interval=0.02, heartbeat=hb
    )
    return ModbusHardware(conn, [PV], policy=FAST)


async def test_heartbeat_counts_while_the_scan_runs_and_stops_with_it(peer: Peer) -> None:
    hw = driver(peer, Heartbeat(address=10, period=0.05, timeout=2.5, timeout_address=11))
    written: list[tuple[int, int]] = []
    peer.store.on_write = lambda dev, table, addr, values: written.append((addr, int(values[0])))
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot() is not None and hw.heartbeats >= 5, what="beats")
        assert written[0] == (11, 2500)  # the timeout, in ms, before the first beat
        beats = [v for a, v in written if a == 10]
        assert beats[:5] == [1, 2, 3, 4, 5]
        before = hw.heartbeats
        cycles = hw.cycles
        await wait_until(lambda: hw.cycles > cycles + 20, what="polling without scans")
        assert hw.heartbeats <= before + 1, "the heartbeat ran on without a scan"
        hw.snapshot()
        await wait_until(lambda: hw.heartbeats > before + 1, what="beats after a scan")
    finally:
        await hw.stop()
    stopped = hw.heartbeats
    assert peer.store.get_value(BEAT) == stopped % 65536


PUMP = ModbusRegister(tag="pump", table="holding", address=0, data_type="float32", safe_value=0)


@pytest.mark.parametrize(
    ("hb", "refused"),
    [
        (Heartbeat(address=10, period=0.05), "refused to write heartbeat 1 to holding 10"),
        (
            Heartbeat(address=10, period=0.05, timeout=2.5, timeout_address=900),
            "refused to write the watchdog timeout 2500 to holding 900",
        ),
    ],
    ids=["heartbeat", "timeout"],
)
async def test_refused_heartbeat_never_holds_back_the_outputs(
    peer: Peer, hb: Heartbeat, refused: str
) -> None:
    """A device that refuses the heartbeat (or has no register at timeout_address) still gets
    every output write, the safe values above all; the refusal is reported once."""
    peer.store.define(PV, 7)
    peer.store.set_raw(1, "holding", 0, [0] * 11)
    peer.store.define(PUMP, 100.0)  # running before the engine came

    def refuse(dev: int, table: str, addr: int, values: Any) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_ADDRESS if addr == 10 and hb.timeout is None else None

    peer.store.on_write = refuse
    conn = ModbusTcp(
        host="127.0.0.1", port=peer.port, timeout=0.3, poll_interval=0.02, heartbeat=hb
    )
    hw = ModbusHardware(conn, [PV, PUMP], policy=FAST)
    await hw.start()
    try:
        events: list[object] = []

        def refusal_seen() -> bool:
            hw.snapshot()  # a scan, so the heartbeat is due
            events.extend(hw.drain_events())
            return any(isinstance(e, WriteRejected) for e in events)

        await wait_until(refusal_seen, what="the refusal reported")
        hw.write({"pump": 50.0})
        await wait_until(lambda: peer.store.get_value(PUMP) == 50.0, what="pump at 50 %")
        hw.write_safe_values()
        results = await hw.settle_outputs(2.0)
        assert peer.store.get_value(PUMP) == 0.0
        assert [(r.tag, r.check) for r in results] == [("pump", OutputCheck.CONFIRMED)]
        assert hw.connection_state is ConnectionState.OK
        rejected = [e for e in [*events, *hw.drain_events()] if isinstance(e, WriteRejected)]
        assert len(rejected) == 1, rejected
        assert f"device 1 {refused}" in rejected[0].message
        assert "illegal data address" in rejected[0].message
    finally:
        await hw.stop()


async def test_a_hung_scan_lets_the_serial_pump_s_own_watchdog_trip() -> None:
    """The serial worker thread polls on its own; it must not feed the instrument's
    communication-loss watchdog while the scan reads no snapshots."""
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
        hung = time.monotonic()
        await wait_until(lambda: not pump.running, timeout=3.0, what="the pump's watchdog")
        assert time.monotonic() - hung >= 0.4
        assert hw._io_alive() and said and "pump stopped" in said[0]
        await wait_until(lambda: hw.snapshot()["Pump State"].value == "STOP", what="seen")
    finally:
        await hw.stop()
        dev.close()
        thread.join(2)
