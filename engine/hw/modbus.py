"""Modbus TCP/RTU driver: a background poll task keeps a snapshot the scan reads without waiting.

The task groups reads (see `plan_reads`), writes only values that changed, and hands every
failure to a `RecoveryMachine`, which decides when to mask, reconnect and report Error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from engine.hw.base import (
    Clock,
    Quality,
    Reading,
    ScalarValue,
    WriteRejected,
)
from engine.hw.driver import TaskDriver
from engine.hw.modbus_codec import (
    DataType,
    ModbusRegister,
    Order,
    ReadRequest,
    Table,
    decode_value,
    encode_value,
    plan_reads,
)
from engine.hw.recovery import Action, RecoveryPolicy
from engine.hw.watchdog import Heartbeat, HeartbeatState

__all__ = [
    "DataType",
    "Heartbeat",
    "ModbusHardware",
    "ModbusRegister",
    "ModbusRtu",
    "ModbusTcp",
    "Order",
    "RecoveryPolicy",
    "Table",
]


class ModbusTcp(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["tcp"] = "tcp"
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    timeout: float = Field(default=1.0, gt=0, description="seconds per request and connect")
    max_gap: int = Field(default=8, ge=0, le=124, description="unused registers read through")
    group_reads: bool = Field(default=True, description="False: one request per register")
    poll_interval: float = Field(default=0.1, gt=0)
    heartbeat: Heartbeat | None = Field(default=None, description="device watchdog register")

    def describe(self) -> str:
        return f"Modbus TCP {self.host}:{self.port}"


class ModbusRtu(BaseModel):
    """`port` is a device path or a pyserial URL (e.g. socket://host:port for a gateway)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["rtu"] = "rtu"
    port: str = Field(min_length=1)
    baudrate: int = Field(default=19200, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout: float = Field(default=1.0, gt=0)
    max_gap: int = Field(default=8, ge=0, le=124)
    group_reads: bool = True
    poll_interval: float = Field(default=0.1, gt=0)
    heartbeat: Heartbeat | None = None

    def describe(self) -> str:
        return f"Modbus RTU {self.port}"


class _LinkError(Exception):
    """The link itself failed (no answer, closed socket): a matter for the recovery machine."""


_REGISTERS = TypeAdapter(list[ModbusRegister])
_READ_FUNCS = {
    "holding": "read_holding_registers",
    "input": "read_input_registers",
    "coil": "read_coils",
    "discrete_input": "read_discrete_inputs",
}


class ModbusHardware(TaskDriver):
    """One Modbus link (a TCP device or an RTU bus with several device ids)."""

    def __init__(
        self,
        connection: ModbusTcp | ModbusRtu,
        registers: Sequence[ModbusRegister | Mapping[str, Any]],
        clock: Clock = time.monotonic,
        policy: RecoveryPolicy | None = None,
        name: str | None = None,
        stop_grace: float = 2.0,
    ) -> None:
        regs = _REGISTERS.validate_python(list(registers))
        if not regs:
            raise ValueError("ModbusHardware needs at least one register")
        tags = [r.tag for r in regs]
        super().__init__(name or connection.describe(), tags, tags, clock, policy, stop_grace)
        self.connection = connection
        self.registers: dict[str, ModbusRegister] = {r.tag: r for r in regs}
        self.plan: list[ReadRequest] = (
            plan_reads(regs, connection.max_gap)
            if connection.group_reads
            else [req for r in regs for req in plan_reads([r], 0)]
        )
        hb = connection.heartbeat
        self._heartbeat = HeartbeatState(hb) if hb is not None else None
        if hb is not None:
            _check_heartbeat(hb, regs)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self.requests_sent = 0
        self.cycles = 0

    def snapshot(self) -> Mapping[str, Reading]:
        """Also lets the heartbeat advance: it beats only while the scan reads snapshots."""
        if self._heartbeat is not None:
            self._heartbeat.scanned()
        return super().snapshot()

    @property
    def heartbeats(self) -> int:
        """Heartbeat writes the device accepted (0 without a heartbeat)."""
        return 0 if self._heartbeat is None else self._heartbeat.beats

    # ---- what the base needs ----

    def _check_write(self, tag: str, value: ScalarValue) -> None:
        reg = self.registers.get(tag)
        if reg is None:
            raise KeyError(f"{self.name}: no register declared for tag {tag!r}")
        if not reg.writable:
            raise ValueError(f"{self.name}: tag {tag!r} is in table {reg.table!r}, read-only")
        encode_value(reg, value)

    def _safe_values(self) -> dict[str, ScalarValue]:
        return {r.tag: r.safe_value for r in self.registers.values() if r.safe_value is not None}

    def _confirmable(self) -> list[str]:
        """Every poll cycle reads every register, written ones included."""
        return [r.tag for r in self.registers.values() if r.writable]

    def _read_back(self, tag: str) -> Reading | None:
        return self._readings.get(tag)

    def _same(self, tag: str, asked: ScalarValue, held: ScalarValue) -> bool:
        """Compared as the registers hold them, so scaling and float32 rounding do not count."""
        reg = self.registers[tag]
        try:
            return encode_value(reg, asked) == encode_value(reg, held)
        except ValueError:
            return False

    async def _start_io(self) -> None:
        self._wake = asyncio.Event()
        self._running = True
        self._task = asyncio.create_task(self._run(), name=f"modbus {self.name}")

    def _exchange_timeout(self) -> float:
        return self.connection.timeout

    async def _release_link(self) -> None:
        self._close()

    # ---- the I/O shell ----

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        c = self.connection
        if isinstance(c, ModbusTcp):
            return AsyncModbusTcpClient(
                c.host, port=c.port, timeout=c.timeout, retries=0, reconnect_delay=0
            )
        return AsyncModbusSerialClient(
            c.port,
            framer=FramerType.RTU,
            baudrate=c.baudrate,
            parity=c.parity,
            stopbits=c.stopbits,
            bytesize=c.bytesize,
            timeout=c.timeout,
            retries=0,
            reconnect_delay=0,
        )

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _connect(self) -> None:
        self._close()
        c = self.connection
        if isinstance(c, ModbusRtu) and "://" not in c.port and not os.path.exists(c.port):
            raise _LinkError(f"serial port {c.port} does not exist")
        client = self._new_client()
        if not await client.connect():
            client.close()
            where = f"{c.host}:{c.port}" if isinstance(c, ModbusTcp) else c.port
            raise _LinkError(f"cannot connect to {where}")
        self._client = client
        if self._heartbeat is not None:
            self._heartbeat.connected()

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            await self._connect()
            self._report(None)
        except _LinkError as exc:
            self._report(str(exc), lost=True)
        while self._running:
            try:
                await self._step()
            except Exception as exc:
                self._close()
                self._fault(exc)

    async def _step(self) -> None:
        assert self._wake is not None
        rec = self._recovery
        action = rec.poll(self._clock())
        if rec.link_down:
            if action is Action.RECONNECT:
                await self._attempt_reconnect()
                return
            deadline = rec.next_deadline()
            delay = self.connection.poll_interval
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - self._clock()))
            await asyncio.sleep(delay)
            return
        await self._cycle_reporting()
        self._wake.clear()
        if not self._ledger.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.connection.poll_interval)

    async def _attempt_reconnect(self) -> None:
        try:
            await self._connect()
            await self._cycle()
        except _LinkError as exc:
            self._close()
            self._report(str(exc))
            return
        self._report(None)

    async def _cycle_reporting(self) -> None:
        try:
            await self._cycle()
        except _LinkError as exc:
            self._report(str(exc), lost=self._client is None or not self._client.connected)
            return
        self._report(None)

    async def _cycle(self) -> None:
        """Writes first: nothing about the heartbeat may keep an output (a safe value above all)
        from reaching the device."""
        await self._flush_writes()
        mark = self._ledger.read_mark()
        device_errors: list[str] = []
        for req in self.plan:
            response = await self._call(
                _READ_FUNCS[req.table],
                f"read {req.table} {req.address}..{req.address + req.count - 1} "
                f"of device {req.device_id}",
                req.address,
                count=req.count,
                device_id=req.device_id,
            )
            now = self._clock()
            if response.isError():
                message = (
                    f"device {req.device_id} refused to read {req.table} "
                    f"{req.address}..{req.address + req.count - 1}: {_exception_text(response)}"
                )
                device_errors.append(message)
                for reg in req.registers:
                    old = self._readings[reg.tag]
                    self._readings[reg.tag] = Reading(old.value, Quality.BAD, now)
            else:
                self._store(req, response, now)
            self._ledger.mark_read((r.tag for r in req.registers), mark)
            self._watch_outputs(r.tag for r in req.registers if r.writable)
        self.cycles += 1
        await self._beat()
        if device_errors:
            raise _LinkError("; ".join(device_errors))

    def _store(self, req: ReadRequest, response: ModbusPDU, now: float) -> None:
        bits = req.table in ("coil", "discrete_input")
        raw: list[int] | list[bool] = list(response.bits) if bits else list(response.registers)
        for reg in req.registers:
            start = reg.address - req.address
            chunk = raw[start : start + reg.width]
            if len(chunk) < reg.width:
                self._readings[reg.tag] = Reading(None, Quality.BAD, now)
                continue
            self._readings[reg.tag] = Reading(decode_value(reg, chunk), Quality.GOOD, now)

    async def _beat(self) -> None:
        """Configures the device's watchdog after a connect and writes the next heartbeat when
        due. A refusal is reported once (WriteRejected, which pauses a run: the device's
        watchdog is not being fed, so it protects nothing) and retried every period; it never
        stops the polling or the output writes."""
        hb = self._heartbeat
        if hb is None or hb.waiting(self._clock()):
            return
        cfg = hb.config
        counts = cfg.timeout_counts
        if hb.configure_pending and counts is not None and cfg.timeout_address is not None:
            what = f"write the watchdog timeout {counts} to holding {cfg.timeout_address}"
            response = await self._call(
                "write_register", what, cfg.timeout_address, counts, device_id=cfg.device_id
            )
            hb.configure_pending = False  # refused: tried again on the next connect
            if response.isError():
                self._beat_refused(what, response, counts, retry=False)
            else:
                hb.refusal = None
        now = self._clock()
        value = hb.due(now)
        if value is None:
            return
        what = f"write heartbeat {value} to {cfg.table} {cfg.address}"
        if cfg.table == "coil":
            response = await self._call(
                "write_coil", what, cfg.address, bool(value), device_id=cfg.device_id
            )
        else:
            response = await self._call(
                "write_register", what, cfg.address, value, device_id=cfg.device_id
            )
        if response.isError():
            self._beat_refused(what, response, value, retry=True)
            return
        hb.written(value, now)

    def _beat_refused(self, what: str, response: ModbusPDU, value: int, *, retry: bool) -> None:
        assert self._heartbeat is not None
        cfg = self._heartbeat.config
        now = self._clock()
        consequence = "its watchdog is not being fed" if retry else "its watchdog may be off"
        message = (
            f"device {cfg.device_id} refused to {what}: {_exception_text(response)}; {consequence}"
        )
        if self._heartbeat.refused(message, now, retry=retry):
            tag = f"heartbeat ({cfg.table} {cfg.address})"
            self._events.append(WriteRejected(tag, value, message, now, self.name))

    async def _flush_writes(self) -> None:
        while (write := self._ledger.head()) is not None:
            reg, value = self.registers[write.tag], write.value
            words = encode_value(reg, value)
            what = f"write {value!r} to {reg.tag} ({reg.table} {reg.address})"
            if reg.table == "coil":
                response = await self._call(
                    "write_coil", what, reg.address, bool(words[0]), device_id=reg.device_id
                )
            elif len(words) == 1:
                response = await self._call(
                    "write_register", what, reg.address, int(words[0]), device_id=reg.device_id
                )
            else:
                response = await self._call(
                    "write_registers",
                    what,
                    reg.address,
                    [int(w) for w in words],
                    device_id=reg.device_id,
                )
            if not response.isError():
                self._ledger.done(write)
                continue
            message = f"device {reg.device_id} refused {what}: {_exception_text(response)}"
            self._ledger.done(write, message)
            self._events.append(WriteRejected(reg.tag, value, message, self._clock(), self.name))

    async def _call(self, func: str, what: str, *args: Any, **kwargs: Any) -> ModbusPDU:
        client = self._client
        if client is None or not client.connected:
            raise _LinkError(f"connection lost ({what})")
        self.requests_sent += 1
        try:
            response: ModbusPDU = await asyncio.wait_for(
                getattr(client, func)(*args, **kwargs), self.connection.timeout * 2
            )
        except (ModbusException, OSError, TimeoutError) as exc:
            raise _LinkError(f"{what} failed: {exc}") from exc
        return response


def _check_heartbeat(hb: Heartbeat, registers: Sequence[ModbusRegister]) -> None:
    """The heartbeat and timeout registers belong to the driver, not to a tag."""
    own = [(hb.table, hb.address, "heartbeat address")]
    if hb.timeout_address is not None:
        own.append(("holding", hb.timeout_address, "heartbeat timeout_address"))
    for table, address, what in own:
        for reg in registers:
            if (
                reg.device_id == hb.device_id
                and reg.table == table
                and reg.address <= address < reg.address + reg.width
            ):
                raise ValueError(
                    f"{what} {address} ({table}) overlaps register {reg.tag!r}; "
                    "the heartbeat registers must not be declared as tags"
                )


def _exception_text(response: ModbusPDU) -> str:
    code = getattr(response, "exception_code", None)
    names = {
        1: "illegal function",
        2: "illegal data address",
        3: "illegal data value",
        4: "device failure",
        6: "device busy",
        11: "gateway target device failed to respond",
    }
    return f"exception {code} ({names.get(code or 0, 'unknown')})"
