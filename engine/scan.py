"""The scan pipeline: one cycle read -> tags -> interpreter -> commands -> alarms -> write ->
report.

`scan(now)` is plain code driven by an injected clock; the real-time loop and the fast simulated
loop (engine/runner.py) are thin shells around it. Whatever a UOD function or a conversion
raises, the scan catches it, logs it, pauses the run with safe outputs and goes on: the loop must
never stop, because a stopped loop leaves the hardware in whatever state it was. The outputs'
safe values and what a run state change does to them live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.alarms.layer import AlarmLayer
from engine.commands import CommandManager, RunningCommand, TagAccess
from engine.describe import describe as _describe
from engine.hw.base import (
    UNSET,
    ConnectionChanged,
    ConnectionState,
    Hardware,
    OutputChanged,
    SafeWriter,
    WriteRejected,
)
from engine.hw.base import Quality as HwQuality
from engine.hw.base import ScalarValue as HwValue
from engine.lang.api import INTERPRETER_TAGS, SystemState
from engine.lang.units import Registry, convert
from engine.tags import TagSpec
from protocol.models import Quality, ScalarValue

_QUALITY = {
    HwQuality.GOOD: Quality.GOOD,
    HwQuality.STALE: Quality.STALE,
    HwQuality.BAD: Quality.BAD,
}
_SAFE_STATES = (SystemState.PAUSED, SystemState.STOPPED, SystemState.RESTARTING)


class ScanPipeline(AlarmLayer):
    """The scan layer of `engine.engine.Engine` (on top of its alarm and reporting layers)."""

    _ureg: Registry

    def _init_scan(self, hardware: Hardware) -> None:
        uod = self.uod
        self.hardware: Hardware = hardware
        self.scan_interval = uod.scan_interval
        self._last_scan: float | None = None
        self._specs: dict[str, TagSpec] = {spec.name: spec for spec in uod.tags}
        self._register_tags = set(uod.register_tags)
        self._outputs = [
            s.name for s in uod.tags if s.direction == "output" and s.kind in ("entry", "choice")
        ]
        self._output_set = frozenset(self._outputs)
        self._plain_numbers = frozenset(
            s.name
            for s in uod.tags
            if s.kind == "reading"
            and s.unit is not None
            and not s.choices
            and s.minimum is None
            and s.maximum is None
        )
        self._written: dict[str, ScalarValue] = {}
        self._dirty_outputs: set[str] = set()
        self._remembered: dict[str, ScalarValue] | None = None
        self._tag_access = TagAccess(self._read_for_command, self._tag_list, self._set_output)
        self.commands = CommandManager(uod.commands, self._ureg)
        self._conversion_errors: dict[str, str] = {}
        self._log_sources: dict[str, str] = {}  # error-pause message -> source, for the log
        self._connected = True
        self.scans = 0
        self._init_alarms()

    # ---- start-up, shut-down and safe values ----------------------------------------------

    async def start(self) -> None:
        """Connects the hardware and puts every output at its safe value (pcode.md 12.5)."""
        await self.hardware.start()
        self.apply_safe_outputs(self.clock.monotonic(), remember=False)

    async def stop(self) -> None:
        await self.hardware.stop()

    def apply_safe_outputs(self, now: float, *, remember: bool) -> None:
        wall = self.clock.wall(now)
        if remember:
            self._remembered = {
                name: self.store[name].value
                for name in self._outputs
                if self._specs[name].safe_value is not None
            }
        for name in self._outputs:
            safe = self._specs[name].safe_value
            if safe is not None:
                self.store.update(name, safe, wall)
        for write in (self._write_safe_codes, self._write_outputs):
            try:
                write()
            except Exception as exc:
                self._error(wall, f"writing safe values failed: {_describe(exc)}", "hardware")
        try:
            self.hardware.write_safe_values()
        except Exception as exc:  # a driver bug must not keep the rest of the outputs unsafe
            self._error(wall, f"writing safe values failed: {_describe(exc)}", "hardware")

    def _write_safe_codes(self) -> None:
        """The tags' safe values, forced past the driver's de-duplication: the device may no
        longer hold what the engine last asked for (another master, its own watchdog)."""
        codes = self.safe_output_codes()
        if not codes:
            return
        if isinstance(self.hardware, SafeWriter):
            self.hardware.write_safe(codes)
        else:
            self.hardware.write(codes)
        for name in codes:
            self._written[name] = self.store[name].value

    def make_outputs_safe(self) -> None:
        """Shutdown: cancels every command (a manual one could set an output again) and writes
        every output's safe value. No scan may run after this."""
        self.commands.cancel_all()
        self.apply_safe_outputs(self.clock.monotonic(), remember=False)

    def safe_output_codes(self) -> dict[str, HwValue]:
        """Each hardware output's safe value as the driver is given it (choice codes encoded)."""
        codes: dict[str, HwValue] = {}
        for name in self._outputs:
            safe = self._specs[name].safe_value
            if name in self._register_tags and safe is not None:
                code = self._specs[name].encode(safe)
                if code is not None:
                    codes[name] = code
        return codes

    def _restore_outputs(self, now: float) -> None:
        remembered, self._remembered = self._remembered, None
        if not remembered:
            return
        wall = self.clock.wall(now)
        for name, value in remembered.items():
            if value is not None:
                self.store.update(name, value, wall)
        self._write_outputs()

    def _outputs_for_state(
        self, old: SystemState, new: SystemState, now: float, wall: float
    ) -> None:
        if new in _SAFE_STATES and old not in _SAFE_STATES:
            if new is SystemState.PAUSED:
                self.commands.suspend_all()
            self.apply_safe_outputs(now, remember=new is SystemState.PAUSED)
        elif old is SystemState.PAUSED and new in (SystemState.RUNNING, SystemState.HOLDING):
            self.commands.resume_all()
            self._restore_outputs(now)
        elif old is SystemState.PAUSED:  # to Stopped or Restarting: outputs stay safe
            self._remembered = None
        if new is SystemState.STOPPED:
            self.commands.cancel_all()
            for tag in self.store.simulated_names():
                self.store.simulate_off(tag, wall)

    # ---- the scan -------------------------------------------------------------------------

    def scan(self, now: float) -> None:
        """One cycle: read -> tags -> interpreter -> commands -> write -> report."""
        if self._last_scan is not None and now < self._last_scan:
            now = self._last_scan  # a late grid point after a scan_now: time never goes back
        wall = self.clock.wall(now)
        dt = 0.0 if self._last_scan is None else now - self._last_scan
        self._last_scan = now
        self.scans += 1
        guard = self._guard
        guard("reading hardware", wall, self._read_hardware, wall)
        guard("accumulators", wall, self._update_accumulators, dt, wall)
        # Calculated tags see this scan's time, not the previous scan's (nor 0 on the first).
        self.store.update("Clock", round(wall, 3), wall)
        self._update_calculated(wall)
        guard("interpreter", wall, self.interpreter.tick, wall)
        self._process_events(now)
        failures = self.commands.run_scan(now)
        for failure in failures:
            self._command_failed(failure.handle, failure.message, now)
        self._process_events(now)
        guard("system tags", wall, self._update_system_tags, wall)
        guard("alarms", wall, self._scan_alarms, wall)
        guard("writing outputs", wall, self._write_outputs)
        guard("reporting", wall, self._report, now, wall)

    def _guard(self, what: str, wall: float, action: Callable[..., object], *args: Any) -> None:
        try:
            action(*args)
        except Exception as exc:
            # Keyed like a tag fault so that a phase failing every scan is logged once.
            self._tag_fault(f"<{what}>", f"{what}: {_describe(exc)}", wall, "engine")
        else:
            if self._conversion_errors:
                self._conversion_errors.pop(f"<{what}>", None)

    def _fault(self, wall: float, message: str, source: str) -> None:
        """An error outside any run-log line: log it and pause the run with safe outputs."""
        if self._pausable():
            self._error_pause(wall, message, source)  # the interpreter logs the message
        else:
            self._error(wall, message, source)

    def _tag_fault(self, tag: str, message: str, wall: float, source: str) -> None:
        """A tag that cannot be computed: logged once per distinct problem, but a run is paused
        whenever it is found running with the fault, so a persistent fault keeps outputs safe."""
        new = self._conversion_errors.get(tag) != message
        self._conversion_errors[tag] = message
        if self._pausable():
            self._error_pause(wall, message, source)
        elif new:
            self._error(wall, message, source)

    def _pausable(self) -> bool:
        return self.interpreter.state in (SystemState.RUNNING, SystemState.HOLDING)

    def _error_pause(self, wall: float, message: str, source: str = "engine") -> None:
        if self._pausable():
            self._log_sources[message] = source
            try:
                self.interpreter.error_pause(wall, message)
            except Exception as exc:
                self._error(wall, f"error pause failed: {_describe(exc)}", "engine")
            self._process_events(self._last_scan or self.clock.monotonic())

    def _read_hardware(self, wall: float) -> None:
        readings = self.hardware.snapshot()
        state = self.hardware.connection_state
        for event in self.hardware.drain_events():
            self._hardware_event(event, wall)
        connected = state is not ConnectionState.ERROR
        if connected != self._connected:
            self._connected = connected
            self.store.update(
                "Connection Status", "Connected" if connected else "Disconnected", wall
            )
        outputs = self._output_set
        plain = self._plain_numbers
        update = self.store.update
        errors = self._conversion_errors
        for name, reading in readings.items():
            quality = _QUALITY.get(reading.quality, Quality.BAD)
            value: ScalarValue = reading.value
            if name in plain and type(value) is float and not reading.unit:
                # The common case, kept cheap: a float for a numeric tag without limits.
                if errors:
                    errors.pop(name, None)
                update(name, value, wall, quality)
                continue
            spec = self._specs.get(name)
            if spec is None:
                continue
            if name in outputs:
                # Outputs keep what the engine wrote; the read-back only tells their quality.
                self.store.set_quality(name, quality, wall)
                continue
            try:
                value = spec.decode(value)
                if value is not None and reading.unit and spec.unit and reading.unit != spec.unit:
                    value = convert(self._ureg, float(value), _pu(reading.unit), _pu(spec.unit))
                value = spec.check_value(value)
            except Exception as exc:
                message = f"tag {name}: cannot convert {reading.value!r}: {_describe(exc)}"
                self.store.set_quality(name, Quality.BAD, wall)
                self._tag_fault(name, message, wall, "engine")
                continue
            errors.pop(name, None)
            update(name, value, wall, quality)

    def _hardware_event(self, event: object, wall: float) -> None:
        if isinstance(event, ConnectionChanged):
            source = event.source or "hardware"
            if event.new is ConnectionState.ERROR:
                self._fault(wall, f"{source}: connection lost: {event.message}", "hardware")
            elif event.new is ConnectionState.OK and event.old is not ConnectionState.OK:
                if event.old in (ConnectionState.RECONNECT, ConnectionState.ERROR):
                    # The device may have restarted with its defaults while the link was down:
                    # the next scan writes every output again (the driver sends them, having
                    # forgotten its own record when it reconnected).
                    self._written.clear()
                self._log(
                    wall,
                    "info",
                    f"{source}: connection {event.new.value}: {event.message}",
                    "hardware",
                )
            elif event.new is not ConnectionState.OK:
                self._log(
                    wall,
                    "warning",
                    f"{source}: connection {event.new.value}: {event.message}",
                    "hardware",
                )
        elif isinstance(event, WriteRejected):
            self._fault(
                wall,
                f"write of {event.value!r} to {event.tag} refused: {event.message}",
                "hardware",
            )
        elif isinstance(event, OutputChanged):
            # The engine's idea of the outputs is wrong: pause with safe outputs (forced), so a
            # later write cannot silently restart what the device stopped.
            self._fault(wall, f"output {event.tag}: {event.message}", "hardware")

    def _update_accumulators(self, dt: float, wall: float) -> None:
        for acc in self.uod.accumulators:
            rate = self.store.value(acc.source)
            current = self.store[acc.name].value
            total = float(current) if isinstance(current, int | float) else 0.0
            if isinstance(rate, int | float) and not isinstance(rate, bool) and dt > 0:
                total += float(rate) * acc.factor * dt
            self.store.update(acc.name, round(total, 9), wall)
        column = self.uod.column_volume
        if column is not None:
            volume = self.store.value(column.volume_tag)
            size: Any = column.column_volume
            if column.column_volume_tag is not None:
                size = self.store.value(column.column_volume_tag)
            if isinstance(volume, int | float) and isinstance(size, int | float) and size > 0:
                self.store.update(
                    "Accumulated CV", round(float(volume) * column.factor / size, 9), wall
                )

    def _update_block_amounts(self, wall: float) -> None:
        """Block Volume / Block CV: the innermost block's timeline in the totalizer's units."""
        for acc, blk in (("Accumulated Volume", "Block Volume"), ("Accumulated CV", "Block CV")):
            if blk not in self.store:
                continue
            unit = self._specs[acc].unit
            if unit is None or unit not in self.uod.base_units:
                continue
            amount = float(self.interpreter.block_amount(unit))
            self.store.update(blk, round(amount, 9), wall)

    def _update_calculated(self, wall: float) -> None:
        if not self.uod.calculated:
            return
        values = dict(self.store.snapshot())  # one copy per scan, updated as tags are computed
        for calc in self.uod.calculated:
            spec = self._specs[calc.name]
            try:
                value = spec.check_value(calc.function(values))
            except Exception as exc:
                message = f"calculated tag {calc.name}: {_describe(exc)}"
                self.store.set_quality(calc.name, Quality.BAD, wall)
                self._tag_fault(calc.name, message, wall, "uod")
                continue
            self._conversion_errors.pop(calc.name, None)
            self.store.update(calc.name, value, wall)
            values[calc.name] = value

    def _update_system_tags(self, wall: float) -> None:
        it = self.interpreter
        update = self.store.update
        update("System State", str(it.state.value), wall)
        update("Method Status", str(it.method_status), wall)
        update("Run Id", it.run_id or "", wall)
        update("Run Time", round(float(it.run_time), 6), wall)
        update("Process Time", round(float(it.process_time), 6), wall)
        update("Block", it.block or "", wall)
        update("Block Time", round(float(it.block_time), 6), wall)
        update("Scope Time", round(float(it.scope_time), 6), wall)
        update("Base", str(it.base), wall)
        update("Run Counter", int(it.run_counter), wall)
        update("Mark", it.mark or "", wall)
        update("Batch Name", it.batch_name or "", wall)
        # In a scan a no-op (set at its start); after an operator action between scans, news.
        update("Clock", round(wall, 3), wall)
        self._update_block_amounts(wall)

    def _write_outputs(self) -> None:
        """Writes outputs that changed since they were last written, and those a command set
        (drivers drop repeated values themselves, except where repeating is the point, such as
        a tare)."""
        changes: dict[str, ScalarValue] = {}
        dirty, self._dirty_outputs = self._dirty_outputs, set()
        for name in self._outputs:
            if name not in self._register_tags:
                continue
            value = self.store[name].value
            if value is None:
                continue
            if name in dirty or self._written.get(name, UNSET) != value:
                changes[name] = value
        if changes:
            encoded: dict[str, HwValue] = {}
            for name, value in changes.items():
                code = self._specs[name].encode(value)
                if code is not None:
                    encoded[name] = code
            try:
                self.hardware.write(encoded)
            except Exception:
                # Nothing counts as written: the next scan tries these values again, and a
                # command's one-off set must not be lost either.
                self._dirty_outputs |= dirty
                raise
            # Only after the driver took them: a failed encode or write is retried next scan.
            self._written.update(changes)

    # ---- commands -------------------------------------------------------------------------

    def _command_failed(self, handle: RunningCommand, message: str, now: float) -> None:
        wall = self.clock.wall(now)
        # The interpreter marks the line failed when it next polls the handle; the pause with
        # safe outputs must not wait for that.
        if self.interpreter.state in (SystemState.RUNNING, SystemState.HOLDING):
            self._error_pause(wall, message)
        else:
            # A manual command failed while no run is active: the outputs still go safe.
            self.apply_safe_outputs(now, remember=False)

    def _read_for_command(self, name: str) -> ScalarValue:
        if name not in self.store and name not in INTERPRETER_TAGS:
            raise KeyError(f"unknown tag {name!r}")
        return self._value(name)

    def _tag_list(self) -> list[str]:
        return list(self.store.tags)

    def _set_output(self, name: str, value: ScalarValue) -> None:
        spec = self._specs.get(name)
        if spec is None:
            raise KeyError(f"unknown tag {name!r}")
        if spec.kind not in ("entry", "choice"):
            raise ValueError(f"tag {name!r} is a {spec.kind} tag and cannot be set")
        checked = spec.check_value(value)
        self.store.update(name, checked, self.clock.wall(self._last_scan or 0.0))
        self._dirty_outputs.add(name)
        if self._remembered is not None:
            # Set by hand during a pause: the operator's latest word wins over the value
            # remembered from before the pause.
            self._remembered.pop(name, None)


def _pu(unit: str) -> str:
    return "percent" if unit == "%" else unit
