"""SerialHardware against a real pseudo-terminal peer answering like the instruments."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pydantic import ValidationError

from engine.hw.base import ConnectionChanged, ConnectionState, Quality, WriteRejected
from engine.hw.recovery import RecoveryPolicy
from engine.hw.serial_line import SerialExchange, SerialHardware, SerialPort
from engine.simdev.instruments import BalanceSim, PumpSim
from engine.simdev.profiles import BALANCE_EXCHANGES, PUMP_EXCHANGES
from engine.simdev.serial_server import PtyDevice
from tests.hw.conftest import wait_until

FAST = RecoveryPolicy(reconnect_after=0.1, error_after=1.0, backoff_initial=0.05, backoff_max=0.2)


class Peer:
    """A pty peer with switchable misbehaviour: answer, silent, garbage, partial, split."""

    def __init__(self, instrument_handle: object) -> None:
        self.handle = instrument_handle
        self.mode = "answer"
        self.commands: list[str] = []
        self.dev = PtyDevice(self._reply)
        self.thread = self.dev.start_thread()

    def _reply(self, line: str) -> str | bytes | None:
        self.commands.append(line)
        if self.mode == "silent":
            return None
        if self.mode == "garbage":
            return b"\x00\xff#?!\r\n"
        answer: str = self.handle(line)  # type: ignore[operator]
        if self.mode == "partial":
            return answer.encode()[:4]
        if self.mode == "split":
            os.write(self.dev.master, answer.encode()[:3])
            time.sleep(0.02)  # the peer's own pacing, so the reply arrives in two pieces
            return answer.encode()[3:] + b"\r\n"
        return answer

    def close(self) -> None:
        self.dev.close()
        self.thread.join(2)


@pytest.fixture
def balance() -> Iterator[tuple[Peer, BalanceSim]]:
    sim = BalanceSim(initial_g=12.345)
    peer = Peer(sim.handle)
    try:
        yield peer, sim
    finally:
        peer.close()


@pytest.fixture
def pump() -> Iterator[tuple[Peer, PumpSim]]:
    sim = PumpSim(clock=time.monotonic)
    peer = Peer(sim.handle)
    try:
        yield peer, sim
    finally:
        peer.close()


def port(peer: Peer) -> SerialPort:
    return SerialPort(url=peer.dev.path, timeout=0.2)


def scanning(hw: SerialHardware, state: ConnectionState) -> Callable[[], bool]:
    """A condition that also scans, as the engine does: polls go out only after a scan read the
    snapshot, so a test that only watched the state could wait forever for a silence to show."""

    def check() -> bool:
        hw.snapshot()
        return hw.connection_state is state

    return check


def states(hw: SerialHardware) -> list[tuple[ConnectionState, ConnectionState]]:
    return [(e.old, e.new) for e in hw.drain_events() if isinstance(e, ConnectionChanged)]


async def test_balance_weight_unit_tare_and_zero(balance: tuple[Peer, BalanceSim]) -> None:
    peer, sim = balance
    hw = SerialHardware(port(peer), BALANCE_EXCHANGES, policy=FAST)
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["Balance Weight"].quality is Quality.GOOD)
        reading = hw.snapshot()["Balance Weight"]
        assert (reading.value, reading.unit) == (12.345, "g")
        hw.write({"Balance Tare": 1})
        await wait_until(lambda: hw.snapshot()["Balance Weight"].value == 0.0, what="tared")
        sim.initial_g = 20.0
        await wait_until(lambda: hw.snapshot()["Balance Weight"].value == pytest.approx(7.655))
        hw.write({"Balance Zero": 1})
        hw.write({"Balance Tare": 1})  # always_send: a second tare is sent again
        await wait_until(lambda: peer.commands.count("T") == 2)
        assert "Z" in peer.commands
        assert hw.drain_events() == []
    finally:
        await hw.stop()


async def test_pump_commands_and_refusals(pump: tuple[Peer, PumpSim]) -> None:
    peer, sim = pump
    hw = SerialHardware(port(peer), PUMP_EXCHANGES, policy=FAST)
    await hw.start()
    try:
        hw.write({"Pump Speed": 100.0, "Pump Command": "Run", "Pump Direction": "CCW"})
        await wait_until(lambda: hw.snapshot()["Pump Flow"].value == -80.0, what="flow")
        await wait_until(lambda: hw.snapshot()["Pump State"].value == "RUN")
        await wait_until(lambda: hw.snapshot()["Pump Speed PV"].value == 100.0)
        assert hw.snapshot()["Pump Speed PV"].unit == "rpm"
        await wait_until(lambda: hw.snapshot()["Pump Direction PV"].value == "CCW")
        writes = [c for c in peer.commands if not c.endswith("?")]
        assert writes == ["SPEED 100.0", "RUN", "DIR CCW"]
        hw.write({"Pump Speed": 900.0})
        await wait_until(lambda: hw.pending_writes == 0)
        await wait_until(lambda: any(isinstance(e, WriteRejected) for e in hw.drain_events()))
        assert sim.speed_rpm == 100.0
        with pytest.raises(ValueError, match="not one of"):
            hw.write({"Pump Command": "Fast"})
        with pytest.raises(ValueError, match="not writable"):
            hw.write({"Pump Flow": 1})
        with pytest.raises(KeyError, match="no exchange declared"):
            hw.write({"Nope": 1})
        hw.write_safe_values()
        await wait_until(lambda: hw.snapshot()["Pump State"].value == "STOP")
        assert sim.speed_rpm == 0.0
        assert hw.connection_state is ConnectionState.OK
    finally:
        await hw.stop()


async def test_reply_split_across_reads_is_reassembled(balance: tuple[Peer, BalanceSim]) -> None:
    peer, _ = balance
    peer.mode = "split"
    hw = SerialHardware(port(peer), BALANCE_EXCHANGES, policy=FAST)
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["Balance Weight"].quality is Quality.GOOD)
        assert hw.snapshot()["Balance Weight"].value == 12.345
        assert hw.connection_state is ConnectionState.OK
    finally:
        await hw.stop()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("garbage", "unexpected reply"),
        ("partial", "partial reply b'S S ' without terminator"),
        ("silent", "no reply within 0.2 s"),
    ],
)
async def test_bad_replies_are_masked_then_recover(
    balance: tuple[Peer, BalanceSim], mode: str, message: str
) -> None:
    peer, _ = balance
    hw = SerialHardware(
        port(peer), BALANCE_EXCHANGES, policy=FAST.model_copy(update={"error_after": 30.0})
    )
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["Balance Weight"].quality is Quality.GOOD)
        peer.mode = mode
        await wait_until(scanning(hw, ConnectionState.RECONNECT))
        reading = hw.snapshot()["Balance Weight"]
        assert (reading.value, reading.quality) == (12.345, Quality.STALE)
        events = hw.drain_events()
        assert message in events[0].message
        peer.mode = "answer"
        await wait_until(lambda: hw.connection_state is ConnectionState.OK)
        await wait_until(lambda: hw.snapshot()["Balance Weight"].quality is Quality.GOOD)
    finally:
        await hw.stop()


async def test_peer_stops_answering_and_comes_back(pump: tuple[Peer, PumpSim]) -> None:
    """Writes made during the outage are replayed in order; the scan calls never wait."""
    peer, _ = pump
    hw = SerialHardware(
        port(peer), PUMP_EXCHANGES, policy=FAST.model_copy(update={"error_after": 30.0})
    )
    line_users: set[int] = set()  # threads that talked to the port
    transact = hw._transact

    def recording(request: bytes, terminator: bytes, what: str) -> str:
        line_users.add(threading.get_ident())
        return transact(request, terminator, what)

    hw._transact = recording  # type: ignore[method-assign]
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["Pump State"].quality is Quality.GOOD)
        peer.mode = "silent"
        await wait_until(scanning(hw, ConnectionState.RECONNECT))
        for values in ({"Pump Speed": 50.0}, {"Pump Command": "Run"}, {"Pump Speed": 60.0}):
            hw.snapshot()
            hw.write(values)
        assert hw.pending_writes == 3  # queued: a silent peer never answers a write
        assert hw.snapshot()["Pump State"].quality is Quality.STALE
        peer.commands.clear()
        peer.mode = "answer"
        await wait_until(lambda: hw.connection_state is ConnectionState.OK, what="recovery")
        await wait_until(lambda: hw.snapshot()["Pump Flow"].value == 48.0)
        writes = [c for c in peer.commands if not c.endswith("?")]
        assert writes == ["SPEED 50.0", "RUN", "SPEED 60.0"]
        assert states(hw) == [
            (ConnectionState.OK, ConnectionState.ISSUE),
            (ConnectionState.ISSUE, ConnectionState.RECONNECT),
            (ConnectionState.RECONNECT, ConnectionState.OK),
        ]
        assert line_users and threading.get_ident() not in line_users, "the scan used the line"
    finally:
        await hw.stop()


async def test_peer_that_never_answers_reaches_error(balance: tuple[Peer, BalanceSim]) -> None:
    peer, _ = balance
    hw = SerialHardware(port(peer), BALANCE_EXCHANGES, policy=FAST)
    await hw.start()
    try:
        await wait_until(lambda: hw.snapshot()["Balance Weight"].quality is Quality.GOOD)
        peer.mode = "silent"
        await wait_until(scanning(hw, ConnectionState.ERROR))
        error = [e for e in hw.drain_events() if isinstance(e, ConnectionChanged)][-1]
        assert error.new is ConnectionState.ERROR
        assert error.source == f"serial {peer.dev.path}"
        assert "no reply within 0.2 s" in error.message
        assert hw.snapshot()["Balance Weight"].quality is Quality.BAD
    finally:
        await hw.stop()


async def test_missing_port_reaches_error_with_clear_message() -> None:
    hw = SerialHardware(
        SerialPort(url="/dev/ttySETPOINT-missing", timeout=0.2), BALANCE_EXCHANGES, policy=FAST
    )
    await hw.start()
    try:
        await wait_until(lambda: hw.connection_state is ConnectionState.ERROR, timeout=5)
        messages = [e.message for e in hw.drain_events()]
        assert any("cannot open serial port /dev/ttySETPOINT-missing" in m for m in messages)
    finally:
        await hw.stop()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"request": b"S\r\n", "pattern": r"S S (\d+)"}, "named group 'value'"),
        ({"request": b"S\r\n", "pattern": r"(?P<value>"}, "not a valid regular expression"),
        ({"pattern": r"(?P<value>\d+)"}, "needs request bytes"),
        ({"kind": "write"}, "exactly one of write_template or write_choices"),
        (
            {"request": b"S\r\n", "pattern": r"(?P<value>\d+)", "safe_value": 1},
            "cannot have a safe_value",
        ),
        (
            {"kind": "write", "write_choices": {"On": "ON\r\n"}, "safe_value": "Off"},
            "not one of",
        ),
        ({"kind": "write", "write_template": "SP {value:d}\r\n", "safe_value": "x"}, "format"),
        ({"request": b"S", "pattern": r"(?P<value>\d+)", "terminator": b""}, "terminator"),
        ({"request": b"S", "pattern": r"(?P<value>\d+)", "kind": "poll"}, "kind"),
    ],
)
def test_bad_exchange_declarations(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SerialExchange.model_validate({"tag": "x", **fields})


def test_bad_port_and_duplicate_tags() -> None:
    with pytest.raises(ValidationError, match="stopbits"):
        SerialPort(url="/dev/ttyUSB0", stopbits=3)
    with pytest.raises(ValidationError, match="parity"):
        SerialPort(url="/dev/ttyUSB0", parity="X")
    with pytest.raises(ValueError, match="declared twice"):
        SerialHardware(SerialPort(url="loop://"), [*BALANCE_EXCHANGES, BALANCE_EXCHANGES[0]])


async def test_safe_values_are_sent_even_when_unchanged(pump: tuple[Peer, PumpSim]) -> None:
    """The pump may have been started from its own keypad: Stop must be sent regardless."""
    peer, sim = pump
    hw = SerialHardware(port(peer), PUMP_EXCHANGES, policy=FAST)
    await hw.start()
    try:
        hw.write({"Pump Command": "Stop", "Pump Speed": 0.0})
        await wait_until(lambda: peer.commands.count("STOP") == 1, what="first stop")
        sim.running = True  # the keypad
        hw.write_safe_values()
        await wait_until(lambda: peer.commands.count("STOP") == 2, what="stop sent again")
        await wait_until(lambda: not sim.running)
        await wait_until(lambda: peer.commands.count("SPEED 0.0") == 2, what="speed sent again")
    finally:
        await hw.stop()


async def test_outputs_are_rewritten_after_the_instrument_comes_back(
    pump: tuple[Peer, PumpSim],
) -> None:
    """An instrument that was power-cycled during an outage holds its defaults: after the port
    recovers, a write of the value asked for before must reach it again."""
    peer, sim = pump
    hw = SerialHardware(
        port(peer), PUMP_EXCHANGES, policy=FAST.model_copy(update={"error_after": 30.0})
    )
    await hw.start()
    try:
        hw.write({"Pump Speed": 50.0})
        await wait_until(lambda: sim.speed_rpm == 50.0, what="first write")
        peer.mode = "silent"
        await wait_until(scanning(hw, ConnectionState.RECONNECT))
        sim.speed_rpm = 0.0  # power cycle: the default speed
        peer.mode = "answer"
        await wait_until(lambda: hw.connection_state is ConnectionState.OK, what="recovery")
        hw.write({"Pump Speed": 50.0})
        await wait_until(lambda: sim.speed_rpm == 50.0, what="output rewritten")
    finally:
        await hw.stop()
