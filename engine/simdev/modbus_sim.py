"""A process model served as a real Modbus TCP device.

The device steps its model on its own wall clock (it stands in for a physical skid); setpoint
writes reach the model at once, and a value the model refuses is answered with "illegal data
value" and the register keeps the value in force. Like a real skid's controller it has a
communication-loss watchdog: once armed (a non-zero timeout register), if the engine's heartbeat
register stops changing for the timeout, the device puts its setpoints at their safe values. A
trip that stopped something is latched: until 1 is written to the Watchdog Reset coil the device
keeps its safe state and refuses any other setpoint ("device failure"), however the heartbeat
carries on. One that found everything safe already (a clean engine exit) clears at the next beat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer

from engine.hw.base import Clock, ScalarValue
from engine.hw.modbus_codec import BIT_TABLES, ModbusRegister, Table
from engine.sim.model import ProcessModel
from engine.simdev import chromatography_map as chrom
from engine.simdev.modbus_server import serve_tcp, stop_server
from engine.simdev.store import RegisterStore


def _chromatography() -> ProcessModel:
    from engine.sim.chromatography import ChromatographyModel

    return ChromatographyModel()


MODELS: Mapping[str, Callable[[], ProcessModel]] = MappingProxyType(
    {"chromatography": _chromatography}
)


class ModbusModelDevice:
    """Binds a ProcessModel to a RegisterStore through the chromatography-style register map."""

    def __init__(
        self,
        model: ProcessModel,
        registers: tuple[ModbusRegister, ...] = chrom.DEVICE_REGISTERS,
        device_id: int = chrom.DEVICE_ID,
        device_name: str = "SP-CHROM",
        clock: Clock = time.monotonic,
        watchdog_timeout: float = 0.0,
    ) -> None:
        self.model = model
        self.registers = {r.tag: r for r in registers}
        self.store = RegisterStore(device_ids=(device_id,), on_write=self._on_write)
        self.heartbeat = 0
        self._clock = clock
        self.watchdog_tripped = False
        self.watchdog_latched = False  # the trip stopped something: only a reset clears it
        self._armed = False
        self._last_beat_value: int | None = None
        self._beat_at = clock()
        self._fill(registers, device_id)
        if self._watchdog_timeout_reg is not None:
            counts = round(watchdog_timeout / chrom.WATCHDOG_TIMEOUT_UNIT)
            self.store.define(self._watchdog_timeout_reg, counts)
        for reg in registers:
            if reg.safe_value is not None:
                self.store.define(reg, reg.safe_value)
                self._apply(reg, reg.safe_value)
        if chrom.MODEL_NAME.tag in self.registers:
            self.store.define(self.registers[chrom.MODEL_NAME.tag], device_name)
        self.publish()

    def _fill(self, registers: tuple[ModbusRegister, ...], device_id: int) -> None:
        """Every address from 0 to the last declared one exists, so grouped reads succeed."""
        top: dict[Table, int] = {}
        for reg in registers:
            top[reg.table] = max(top.get(reg.table, 0), reg.address + reg.width)
        for table, end in top.items():
            zeros: list[int] | list[bool] = [False] * end if table in BIT_TABLES else [0] * end
            self.store.set_raw(device_id, table, 0, zeros)

    def _apply(self, reg: ModbusRegister, value: ScalarValue) -> None:
        if reg.tag == chrom.INLET.tag:
            code = int(value)
            if code not in chrom.INLET_NAMES:
                raise ValueError(f"Inlet code must be one of {sorted(chrom.INLET_NAMES)}")
            self.model.set_input("Inlet", chrom.INLET_NAMES[code])
        else:
            self.model.set_input(reg.tag, float(value))

    @property
    def _watchdog_timeout_reg(self) -> ModbusRegister | None:
        return self.registers.get(chrom.WATCHDOG_TIMEOUT.tag)

    def _on_write(
        self, device_id: int, table: Table, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if table == "holding":
            self._watchdog_write(address, len(values))
        reset = self.registers.get(chrom.WATCHDOG_RESET.tag)
        if reset is not None and reset.table == table and self.store.get_value(reset):
            self.store.define(reset, False)
            self.reset_watchdog()
        refused: ExcCodes | None = None
        for reg in self.registers.values():
            if reg.table != table or reg.safe_value is None:
                continue
            if reg.address + reg.width <= address or reg.address >= address + len(values):
                continue
            value = self.store.get_value(reg)
            if self.watchdog_latched and value != reg.safe_value:
                refused = ExcCodes.DEVICE_FAILURE  # latched: reset the watchdog first
                self.store.define(reg, reg.safe_value)
                continue
            try:
                self._apply(reg, value)
            except ValueError:
                refused = refused or ExcCodes.ILLEGAL_VALUE
                self.store.define(reg, self._current(reg))
        return refused

    def reset_watchdog(self) -> None:
        """The operator's reset after a trip: setpoints are accepted again, the timer restarts."""
        self._set_tripped(False)
        self.watchdog_latched = False
        self._beat_at = self._clock()

    def _watchdog_write(self, address: int, count: int) -> None:
        """A changed heartbeat or a new timeout (re)starts the watchdog's timer and arms it."""
        counter = self.registers.get(chrom.WATCHDOG_COUNTER.tag)
        timeout = self._watchdog_timeout_reg
        if timeout is not None and address <= timeout.address < address + count:
            self._armed = True
            self._beat_at = self._clock()
            if self.watchdog_tripped and not self.watchdog_latched:
                self._set_tripped(False)  # it stopped nothing (a clean engine exit)
        if counter is None or not address <= counter.address < address + count:
            return
        value = int(self.store.get_value(counter))
        if value != self._last_beat_value:
            self._last_beat_value = value
            self._armed = True
            self._beat_at = self._clock()
            if self.watchdog_tripped and not self.watchdog_latched:
                self._set_tripped(False)  # it stopped nothing (a clean engine exit)

    def _set_tripped(self, tripped: bool) -> None:
        self.watchdog_tripped = tripped
        reg = self.registers.get(chrom.WATCHDOG_TRIPPED.tag)
        if reg is not None:
            self.store.define(reg, tripped)

    @property
    def watchdog_timeout(self) -> float:
        reg = self._watchdog_timeout_reg
        if reg is None:
            return 0.0
        return int(self.store.get_value(reg)) * chrom.WATCHDOG_TIMEOUT_UNIT

    def watch(self, now: float) -> str | None:
        """Trips the watchdog when the heartbeat has not changed for the timeout: every setpoint
        goes to its safe value (pump 0 %, inlet valves closed). Returns what it did, once."""
        timeout = self.watchdog_timeout
        if not self._armed or self.watchdog_tripped or timeout <= 0:
            return None
        silent = now - self._beat_at
        if silent < timeout:
            return None
        for reg in self.registers.values():
            if reg.safe_value is not None:
                if self.store.get_value(reg) != reg.safe_value:
                    self.watchdog_latched = True
                self.store.define(reg, reg.safe_value)
                self._apply(reg, reg.safe_value)
        self._set_tripped(True)
        safe = ", ".join(
            f"{r.tag} = {r.safe_value}" for r in self.registers.values() if r.safe_value is not None
        )
        latch = (
            f"; latched until 1 is written to coil {chrom.WATCHDOG_RESET.address} (Watchdog Reset)"
            if self.watchdog_latched
            else ""
        )
        return (
            f"watchdog tripped: no heartbeat for {silent:.1f} s (timeout {timeout:g} s); "
            f"safe state: {safe} (pump stopped, inlet valves closed){latch}"
        )

    def _current(self, reg: ModbusRegister) -> float | int:
        if reg.tag == chrom.INLET.tag:
            return chrom.INLET_CODES[str(getattr(self.model, "inlet", "None"))]
        return float(getattr(self.model, "pump_setpoint", 0.0))

    def step(self, dt: float) -> None:
        self.model.step(dt)
        self.publish()

    def publish(self) -> None:
        outputs = self.model.outputs()
        for name, value in outputs.items():
            reg = self.registers.get(name)
            if reg is not None and not isinstance(value, str):
                self.store.define(reg, value)
        self.heartbeat = (self.heartbeat + 1) % 65536
        if chrom.HEARTBEAT.tag in self.registers:
            self.store.define(self.registers[chrom.HEARTBEAT.tag], self.heartbeat)
        if chrom.PUMP_RUNNING.tag in self.registers:
            flow = outputs.get("FT01", 0.0)
            running = isinstance(flow, float | int) and flow > 0.1
            self.store.define(self.registers[chrom.PUMP_RUNNING.tag], running)


async def run_modbus_device(
    model_name: str,
    host: str,
    port: int,
    interval: float = 0.1,
    ready: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
    watchdog: float = 0.0,
) -> None:
    """Serve until `stop` is set (or the task is cancelled); `ready` also gets watchdog news."""
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose from {', '.join(MODELS)}")
    device = ModbusModelDevice(MODELS[model_name](), watchdog_timeout=watchdog)
    server: ModbusTcpServer = await serve_tcp(device.store, host, port)
    ready(f"modbus device: {host}:{port} ({model_name}, device id {chrom.DEVICE_ID})")
    stop = stop or asyncio.Event()
    last = time.monotonic()
    tripped = latched = False
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            now = time.monotonic()
            if tripped and not device.watchdog_tripped:
                ready(
                    "modbus device: watchdog reset: setpoints accepted again"
                    if latched
                    else "modbus device: watchdog: heartbeat resumed"
                )
            if (news := device.watch(now)) is not None:
                ready(f"modbus device: {news}")
            tripped, latched = device.watchdog_tripped, device.watchdog_latched
            device.step(now - last)
            last = now
    finally:
        await stop_server(server)
