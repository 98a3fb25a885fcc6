"""ModbusHardware against a real pymodbus server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from engine.hw.base import ConnectionChanged, ConnectionState, Quality, WriteRejected
from engine.hw.modbus import ModbusHardware, ModbusRegister, ModbusRtu, ModbusTcp
from engine.hw.recovery import RecoveryPolicy
from engine.simdev.modbus_server import serve_rtu_socket, stop_server
from engine.simdev.store import RegisterStore
from tests.hw.conftest import Peer, wait_until
from tests.net import free_port

FAST = RecoveryPolicy(reconnect_after=0.1, error_after=1.0, backoff_initial=0.05, backoff_max=0.2)
CODES = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
SAMPLES = {
    "int16": -12345,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3123456789,
    "float32": -2.5,
    "float64": 1234.5678901234,
}
ORDERS = [("big", "big"), ("big", "little"), ("little", "big"), ("little", "little")]


def tcp(peer: Peer, **kw: object) -> ModbusTcp:
    return ModbusTcp.model_validate(
        {"host": "127.0.0.1", "port": peer.port, "timeout": 0.3, "poll_interval": 0.02, **kw}
    )


def expected_words(data: bytes, word_order: str, byte_order: str) -> list[int]:
    """Independent of the codec: the layouts as device manuals describe them."""
    pairs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if byte_order == "little":
        pairs = [p[1:2] + p[0:1] for p in pairs]
    if word_order == "little":
        pairs = pairs[::-1]
    return [(p[0] << 8) | p[1] for p in pairs]


def type_matrix() -> Iterator[tuple[ModbusRegister, float | int, list[int]]]:
    address = 0
    for data_type, code in CODES.items():
        for word_order, byte_order in ORDERS:
            r = ModbusRegister(
                tag=f"{data_type}-{word_order}-{byte_order}",
                table="holding",
                address=address,
                data_type=data_type,
                word_order=word_order,
                byte_order=byte_order,
            )
            value = SAMPLES[data_type]
            yield r, value, expected_words(struct.pack(">" + code, value), word_order, byte_order)
            address += r.width + 1


async def test_every_type_and_order_round_trips(peer: Peer) -> None:
    matrix = list(type_matrix())
    regs = [r for r, _, _ in matrix]
    peer.store.set_raw(1, "holding", 0, [0] * 700)  # gaps are read through
    for r, _, words in matrix:
        peer.store.set_raw(1, "holding", r.address, words)
    text = ModbusRegister(tag="name", table="input", address=10, data_type="string", length=4)
    peer.store.set_raw(1, "input", 10, [0x5345, 0x5450, 0x4F49, 0x4E54])  # "SETPOINT"
    flag = ModbusRegister(tag="flag", table="holding", address=500, data_type="bool")
    coil = ModbusRegister(tag="coil", table="coil", address=7, data_type="bool")
    di = ModbusRegister(tag="di", table="discrete_input", address=3, data_type="bool")
    scaled = ModbusRegister(
        tag="scaled", table="holding", address=600, data_type="int16", scale=0.1, offset=-10
    )
    peer.store.set_raw(1, "holding", 500, [1])
    peer.store.set_raw(1, "coil", 7, [True])
    peer.store.set_raw(1, "discrete_input", 3, [True])
    peer.store.set_raw(1, "holding", 600, [250])
    hw = ModbusHardware(tcp(peer), [*regs, text, flag, coil, di, scaled], policy=FAST)
    await hw.start()
    try:
        await wait_until(
            lambda: all(r.quality is Quality.GOOD for r in hw.snapshot().values()),
            what="first complete read",
        )
        snap = hw.snapshot()
        for r, value, _ in matrix:
            assert snap[r.tag].value == pytest.approx(value), r.tag
            assert snap[r.tag].quality is Quality.GOOD
        assert snap["name"].value == "SETPOINT"
        assert (snap["flag"].value, snap["coil"].value, snap["di"].value) == (True, True, True)
        assert snap["scaled"].value == pytest.approx(15.0)

        new = {
            r.tag: -value if r.data_type not in ("uint16", "uint32") else value // 3
            for r, value, _ in matrix
        }
        hw.write({**new, "flag": False, "coil": False, "scaled": 2.5})
        await wait_until(lambda: hw.pending_writes == 0, what="writes sent")
        for r, _, _ in matrix:
            code = CODES[r.data_type]
            words = expected_words(struct.pack(">" + code, new[r.tag]), r.word_order, r.byte_order)
            table = peer.store.tables[(1, "holding")]
            assert [table[r.address + i] for i in range(r.width)] == words, r.tag
        assert peer.store.tables[(1, "holding")][500] == 0
        assert peer.store.tables[(1, "coil")][7] is False
        assert peer.store.tables[(1, "holding")][600] == 125
        await wait_until(lambda: hw.snapshot()["scaled"].value == pytest.approx(2.5))
    finally:
        await hw.stop()


async def test_reads_are_grouped_and_counted_by_the_server(peer: Peer) -> None:
    regs = [ModbusRegister(tag=f"r{i}", table="input", address=i) for i in range(100)]
    regs += [
        ModbusRegister(tag=f"f{i}", table="holding", address=i * 2, data_type="float32")
        for i in range(70)
    ]  # 140 registers: two requests
    regs += [
        ModbusRegister(tag=f"c{i}", table="coil", address=i * 3, data_type="bool")
        for i in range(20)
    ]
    for r in regs:
        peer.store.define(r, 1)
    hw = ModbusHardware(tcp(peer, max_gap=8), regs, policy=FAST)
    assert len(hw.plan) == 4
    await hw.start()
    try:
        await wait_until(lambda: hw.cycles >= 2)
        before_requests, before_cycles = peer.store.read_requests(), hw.cycles
        await wait_until(lambda: hw.cycles >= before_cycles + 5)
        requests = peer.store.read_requests() - before_requests
        cycles = hw.cycles - before_cycles
        assert requests in range(4 * cycles, 4 * (cycles + 1) + 1)
    finally:
        await hw.stop()
    assert len(ModbusHardware(tcp(peer, max_gap=0), regs).plan) == 1 + 2 + 20
    ungrouped = ModbusHardware(tcp(peer, group_reads=False), regs, policy=FAST)
    assert len(ungrouped.plan) == 100 + 70 + 20
    await ungrouped.start()
    try:
        await wait_until(lambda: ungrouped.cycles >= 1)
        before_requests, before_cycles = peer.store.read_requests(), ungrouped.cycles
        await wait_until(lambda: ungrouped.cycles >= before_cycles + 2)
        requests = peer.store.read_requests() - before_requests
        cycles = ungrouped.cycles - before_cycles
        assert requests in range(190 * cycles, 190 * (cycles + 1) + 1)
    finally:
        await ungrouped.stop()


async def test_writes_only_when_changed(peer: Peer) -> None:
    sp = ModbusRegister(tag="sp", table="holding", address=1, data_type="float32")
    peer.store.define(sp, 0.0)
    written: list[tuple[int, list[int] | list[bool]]] = []
    peer.store.on_write = lambda dev, table, addr, values: written.append((addr, values))
    hw = ModbusHardware(tcp(peer), [sp], policy=FAST)
    await hw.start()
    try:
        for _ in range(3):
            hw.write({"sp": 12.5})
        await wait_until(lambda: hw.pending_writes == 0 and len(written) == 1)
        hw.write({"sp": 12.5})
        hw.write({"sp": 13.0})
        await wait_until(lambda: len(written) == 2)
        await wait_until(lambda: hw.snapshot()["sp"].value == 13.0)
        assert peer.store.write_requests() == 2
    finally:
        await hw.stop()


async def test_write_errors_are_clear(peer: Peer) -> None:
    regs = [
        ModbusRegister(tag="pv", table="input", address=0),
        ModbusRegister(tag="sp", table="holding", address=0, data_type="int16", safe_value=0),
    ]
    hw = ModbusHardware(tcp(peer), regs, policy=FAST)
    with pytest.raises(KeyError, match="no register declared for tag 'nope'"):
        hw.write({"nope": 1})
    with pytest.raises(ValueError, match="read-only"):
        hw.write({"pv": 1})
    with pytest.raises(ValueError, match="does not fit int16"):
        hw.write({"sp": 40000})
    with pytest.raises(ValueError, match="declared twice"):
        ModbusHardware(tcp(peer), [*regs, regs[0]])
    with pytest.raises(ValidationError, match="port"):
        ModbusTcp(host="127.0.0.1", port=70000)
    assert hw.snapshot()["pv"].quality is Quality.BAD  # never read


async def test_device_refusal_is_reported_not_shown_live(peer: Peer) -> None:
    """An address the device does not have: the tag is BAD and the state says why."""
    good = ModbusRegister(tag="good", table="holding", address=0)
    missing = ModbusRegister(tag="missing", table="holding", address=900)
    sp = ModbusRegister(tag="sp", table="holding", address=950)
    peer.store.define(good, 7)
    hw = ModbusHardware(tcp(peer), [good, missing, sp], policy=FAST)
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["good"].quality is not Quality.BAD)
        assert hw.snapshot()["missing"].quality is Quality.BAD
        hw.write({"sp": 3})
        await wait_until(lambda: hw.connection_state is ConnectionState.ERROR)
        events = hw.drain_events()
        rejected = [e for e in events if isinstance(e, WriteRejected)]
        assert rejected and "illegal data address" in rejected[0].message
        changes = [e for e in events if isinstance(e, ConnectionChanged)]
        assert "refused to read holding 900..900" in changes[0].message
        assert "illegal data address" in changes[-1].message
    finally:
        await hw.stop()


async def test_server_stopped_and_restarted_recovers(peer: Peer) -> None:
    pv = ModbusRegister(tag="pv", table="input", address=0, data_type="float32")
    a = ModbusRegister(tag="a", table="holding", address=0, data_type="int16")
    b = ModbusRegister(tag="b", table="holding", address=1, data_type="int16")
    peer.store.define(pv, 1.0)
    peer.store.define(a, 0)
    peer.store.define(b, 0)
    hw = ModbusHardware(
        tcp(peer),
        [pv, a, b],
        policy=RecoveryPolicy(
            reconnect_after=0.1, error_after=30.0, backoff_initial=0.05, backoff_max=0.2
        ),
    )

    def scan(values: dict[str, int] | None = None) -> None:
        """What the scan cycle does; plain calls, so the poll task cannot run in between: any
        request counted here would have been sent by snapshot()/write() themselves."""
        sent = hw.requests_sent
        hw.snapshot()
        if values:
            hw.write(values)
        assert hw.requests_sent == sent, "the scan waited on the device"

    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["pv"].quality is Quality.GOOD)
        assert hw.connection_state is ConnectionState.OK
        await peer.stop()
        await wait_until(lambda: hw.connection_state is ConnectionState.RECONNECT, what="reconnect")
        snap = hw.snapshot()
        assert snap["pv"].value == 1.0 and snap["pv"].quality is Quality.STALE
        written: list[tuple[int, int]] = []
        peer.store.on_write = lambda dev, table, addr, values: written.append(
            (addr, int(values[0]))
        )
        for values in ({"a": 1}, {"b": 2}, {"a": 3}, {"b": 2}):
            scan(values)
        assert hw.pending_writes == 3  # queued in order; the repeated b=2 is dropped
        peer.store.define(pv, 2.0)
        await peer.start()
        await wait_until(lambda: hw.connection_state is ConnectionState.OK, what="recovery")
        for _ in range(5):
            scan()
        await wait_until(lambda: hw.snapshot()["pv"].value == 2.0)
        assert hw.snapshot()["pv"].quality is Quality.GOOD
        assert written == [(0, 1), (1, 2), (0, 3)]
        states = [(e.old, e.new) for e in hw.drain_events() if isinstance(e, ConnectionChanged)]
        assert states == [
            (ConnectionState.OK, ConnectionState.ISSUE),
            (ConnectionState.ISSUE, ConnectionState.RECONNECT),
            (ConnectionState.RECONNECT, ConnectionState.OK),
        ]
    finally:
        await hw.stop()


async def test_server_that_never_returns_reaches_error(peer: Peer) -> None:
    pv = ModbusRegister(tag="pv", table="input", address=0)
    peer.store.define(pv, 5)
    hw = ModbusHardware(tcp(peer), [pv], policy=FAST)
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["pv"].quality is Quality.GOOD)
        await peer.stop()
        await wait_until(lambda: hw.connection_state is ConnectionState.ERROR, timeout=5)
        error = [e for e in hw.drain_events() if isinstance(e, ConnectionChanged)][-1]
        assert error.new is ConnectionState.ERROR
        assert error.source == f"Modbus TCP 127.0.0.1:{peer.port}"
        assert "no connection for" in error.message
        assert f"cannot connect to 127.0.0.1:{peer.port}" in error.message
        reading = hw.snapshot()["pv"]
        assert reading.quality is Quality.BAD and reading.value == 5
    finally:
        await hw.stop()


async def test_unreachable_device_does_not_raise_and_reports() -> None:
    port = free_port()
    hw = ModbusHardware(
        ModbusTcp(host="127.0.0.1", port=port, timeout=0.2, poll_interval=0.02),
        [ModbusRegister(tag="pv", table="input", address=0)],
        policy=FAST,
    )
    await hw.start()
    try:
        await wait_until(lambda: hw.connection_state is ConnectionState.ERROR, timeout=5)
        messages = [e.message for e in hw.drain_events()]
        assert any(f"cannot connect to 127.0.0.1:{port}" in m for m in messages)
        assert hw.snapshot()["pv"].quality is Quality.BAD
    finally:
        await hw.stop()


async def test_modbus_rtu_framing_over_a_serial_url() -> None:
    store = RegisterStore(device_ids=(3,))
    regs = [
        ModbusRegister(tag="t", table="input", address=4, data_type="float32", device_id=3),
        ModbusRegister(tag="sp", table="holding", address=0, data_type="uint16", device_id=3),
    ]
    store.define(regs[0], 21.5)
    store.define(regs[1], 0)
    port = free_port()
    server = await serve_rtu_socket(store, "127.0.0.1", port)
    hw = ModbusHardware(
        ModbusRtu(port=f"socket://127.0.0.1:{port}", timeout=0.5, poll_interval=0.02),
        regs,
        policy=FAST,
    )
    try:
        await hw.start()
        await wait_until(lambda: hw.snapshot()["t"].quality is Quality.GOOD)
        assert hw.snapshot()["t"].value == 21.5
        hw.write({"sp": 42})
        await wait_until(lambda: store.get_value(regs[1]) == 42)
    finally:
        await hw.stop()
        await stop_server(server)


async def test_missing_rtu_port_is_named() -> None:
    hw = ModbusHardware(
        ModbusRtu(port="/dev/ttySETPOINT-missing", timeout=0.2, poll_interval=0.02),
        [ModbusRegister(tag="pv", table="input", address=0)],
        policy=FAST,
    )
    await hw.start()
    try:
        await wait_until(lambda: hw.connection_state is ConnectionState.ERROR, timeout=5)
        assert any(
            "serial port /dev/ttySETPOINT-missing does not exist" in e.message
            for e in hw.drain_events()
        )
    finally:
        await hw.stop()


async def test_stop_ends_a_busy_poll_loop(peer: Peer) -> None:
    """A cancellation swallowed inside the client library must not keep the driver running."""
    pv = ModbusRegister(tag="pv", table="input", address=0)
    peer.store.define(pv, 1)
    hw = ModbusHardware(ModbusTcp(host="127.0.0.1", port=peer.port, poll_interval=1e-6), [pv])

    async def probe_round_trip() -> int:
        """One read from a fresh connection, answered; returns the requests it sent (1)."""
        probe = ModbusHardware(ModbusTcp(host="127.0.0.1", port=peer.port, poll_interval=60), [pv])
        await probe.start()
        await wait_until(lambda: probe.cycles >= 1, what="the probe's read")
        await probe.stop()
        return probe.requests_sent

    for _ in range(3):
        await hw.start()
        await wait_until(lambda: hw.cycles > 50)
        await hw.stop()
        assert not [t for t in asyncio.all_tasks() if t.get_name() == f"modbus {hw.name}"]
        # The first round trip lets the server take a request that was in flight at stop();
        # during the second, a driver still polling (every microsecond) would be counted too.
        await probe_round_trip()
        settled = peer.store.read_requests()
        probed = await probe_round_trip()
        assert peer.store.read_requests() - settled == probed, "requests after stop()"


async def test_device_that_stops_answering_is_masked_then_recovers(peer: Peer) -> None:
    """The TCP connection stays up but the device goes silent (a hung PLC, a dead gateway)."""
    pv = ModbusRegister(tag="pv", table="input", address=0)
    sp = ModbusRegister(tag="sp", table="holding", address=0, safe_value=0)
    peer.store.define(pv, 7)
    peer.store.define(sp, 5)
    answering = asyncio.Event()
    answering.set()
    real_get = peer.store.async_getValues

    async def maybe_silent(*args: Any, **kwargs: Any) -> Any:
        await answering.wait()
        return await real_get(*args, **kwargs)

    peer.store.async_getValues = maybe_silent  # type: ignore[method-assign]
    hw = ModbusHardware(tcp(peer), [pv, sp], policy=FAST.model_copy(update={"error_after": 30}))
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["pv"].quality is Quality.GOOD)
        answering.clear()
        await wait_until(lambda: hw.connection_state is ConnectionState.RECONNECT)
        assert hw.snapshot()["pv"].quality is Quality.STALE
        hw.write_safe_values()
        answering.set()
        await wait_until(lambda: hw.connection_state is ConnectionState.OK, timeout=10)
        await wait_until(lambda: peer.store.get_value(sp) == 0)
        first = hw.drain_events()[0]
        assert isinstance(first, ConnectionChanged) and "failed" in first.message
    finally:
        await hw.stop()


async def test_safe_values_reach_the_device_even_when_unchanged(peer: Peer) -> None:
    """The device may have drifted from what was last asked (local panel, reset): safe values
    are always sent, never de-duplicated."""
    sp = ModbusRegister(tag="sp", table="holding", address=0, safe_value=0)
    peer.store.define(sp, 9)
    written: list[int] = []
    peer.store.on_write = lambda dev, table, addr, values: written.append(int(values[0]))
    hw = ModbusHardware(tcp(peer), [sp], policy=FAST)
    await hw.start()
    try:
        hw.write({"sp": 0})
        await wait_until(lambda: written == [0], what="first write")
        peer.store.define(sp, 7)  # changed at the device, behind the driver's back
        hw.write_safe_values()
        await wait_until(lambda: written == [0, 0], what="safe value sent again")
        assert peer.store.get_value(sp) == 0
    finally:
        await hw.stop()


async def test_outputs_are_rewritten_after_the_device_restarts_with_defaults(peer: Peer) -> None:
    """A power-cycled device holds its defaults: after reconnecting, a write of the value asked
    for before the outage must reach it again."""
    sp = ModbusRegister(tag="sp", table="holding", address=0)
    peer.store.define(sp, 0)
    hw = ModbusHardware(tcp(peer), [sp], policy=FAST.model_copy(update={"error_after": 30.0}))
    await hw.start()
    try:
        hw.write({"sp": 5})
        await wait_until(lambda: peer.store.get_value(sp) == 5, what="first write")
        await peer.stop()
        await wait_until(lambda: hw.connection_state is ConnectionState.RECONNECT)
        peer.store = RegisterStore(device_ids=(1, 2))  # the restarted device: defaults
        peer.store.define(sp, 0)
        await peer.start()
        await wait_until(lambda: hw.connection_state is ConnectionState.OK, what="recovery")
        hw.write({"sp": 5})
        await wait_until(lambda: peer.store.get_value(sp) == 5, what="output rewritten")
    finally:
        await hw.stop()
