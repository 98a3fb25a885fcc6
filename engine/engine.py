"""The engine: one unit's tags, commands, P-code interpreter and run control, one scan at a time.

`Engine.scan(now)` is plain code driven by an injected clock; the real-time loop and the fast
simulated loop (engine/runner.py) are thin shells around it. Whatever a UOD function or a
conversion raises, the scan catches it, logs it, pauses the run with safe outputs and goes on:
the loop must never stop, because a stopped loop leaves the hardware in whatever state it was.
"""

from __future__ import annotations

import hashlib
import socket
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from engine.clock import Clock
from engine.commands import CommandManager, RunningCommand, TagAccess
from engine.hw.base import UNSET, ConnectionChanged, ConnectionState, Hardware, WriteRejected
from engine.hw.base import Quality as HwQuality
from engine.hw.base import ScalarValue as HwValue
from engine.lang import runlog as ev
from engine.lang.analyzer import Finding as LangFinding
from engine.lang.api import INTERPRETER_TAGS, CommandHandle, LineState, SystemState
from engine.lang.units import Registry, define_unit, new_unit_registry
from engine.ports import EngineCommandError, MessageSink, MethodSaved, Registration
from engine.tags import TagStore
from engine.uod.definition import Uod
from protocol.messages import (
    ControlState,
    ErrorLog,
    Method,
    MethodState,
    RunLog,
    RunStarted,
    RunStopped,
    TagsUpdated,
)
from protocol.models import (
    ControlAction,
    ErrorLogEntry,
    Finding,
    Quality,
    RunLogLine,
    ScalarValue,
)

EventKind = Literal["mark", "command", "state", "error"]


@dataclass(frozen=True)
class EngineEvent:
    """A human-level event for `simulate --json` and the standalone console."""

    run_time: float
    kind: EventKind
    text: str
    state: str
    detail: str | None = None


Observer = Callable[[EngineEvent], None]


class NullSink:
    """A sink that drops everything (simulate, benchmarks)."""

    def emit(self, kind: type[Any], /, **fields: Any) -> None:
        return None


_QUALITY = {
    HwQuality.GOOD: Quality.GOOD,
    HwQuality.STALE: Quality.STALE,
    HwQuality.BAD: Quality.BAD,
}
_SAFE_STATES = (SystemState.PAUSED, SystemState.STOPPED, SystemState.RESTARTING)
# Change every scan without anything happening: sampled, but never a live update on their own.
_QUIET_TAGS = frozenset({"Clock"})


class Engine:
    """One unit. Implements the interpreter's EngineContext and the link's EngineControl."""

    def __init__(
        self,
        uod: Uod,
        *,
        clock: Clock,
        sink: MessageSink | None = None,
        method: str = "",
        hardware: Hardware | None = None,
        computer_name: str | None = None,
        uod_hash: str = "",
        observers: Sequence[Observer] = (),
        ureg: Registry | None = None,
    ) -> None:
        from engine.lang.interpreter import Interpreter

        self.uod = uod
        self.clock = clock
        self.sink: MessageSink = sink if sink is not None else NullSink()
        self.observers: list[Observer] = list(observers)
        # A registry takes ~0.1 s to build; tests and benchmarks may share one between engines.
        self._ureg: Registry = ureg if ureg is not None else new_unit_registry()
        for definition in uod.unit_definitions:
            define_unit(self._ureg, definition)
        if hardware is None:
            if uod.hardware_factory is None:
                raise ValueError(f"UOD {uod.name!r} declares no hardware")
            hardware = uod.hardware_factory(clock.monotonic)
        self.hardware: Hardware = hardware
        self.computer_name = computer_name or socket.gethostname()
        self.uod_hash = uod_hash
        self.scan_interval = uod.scan_interval
        now = clock.monotonic()
        self._last_scan: float | None = None
        self._next_sample: float | None = None
        self.store = TagStore.from_specs(uod.tags, clock.wall(now))
        self._specs = {spec.name: spec for spec in uod.tags}
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
        self._run_log_values: dict[str, dict[str, ScalarValue]] = {}
        self._log_batch: dict[str, RunLogLine] = {}
        self._progress_pending: dict[str, RunLogLine] = {}
        self._event_run_id: str | None = None
        self._sink_online: bool | None = None
        self._control_user: str | None = None  # who asked, for RunStarted / RunStopped
        self._line_states: dict[str, LineState] = {}
        self._control_key: tuple[Any, ...] | None = None
        self._connected = True
        self._method_hash = _hash(method)
        self._started_once = False
        self._run_start_wall: float | None = None
        self._event_state = SystemState.STOPPED
        self.error_log: list[ErrorLogEntry] = []
        self.interpreter = Interpreter(self, new_run_id=lambda: uuid.uuid4().hex)
        self.scans = 0
        self.sink_errors = 0
        self.last_sink_error: str | None = None
        if method:
            try:
                self.interpreter.set_method(method, user=None)
            except Exception as exc:
                raise EngineCommandError(_plain(exc)) from None

    # ---- start-up and shut-down -----------------------------------------------------------

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
        try:
            self._write_outputs(force=True)
        except Exception as exc:
            self._error(wall, f"writing safe values failed: {_describe(exc)}", "hardware")
        try:
            self.hardware.write_safe_values()
        except Exception as exc:  # a driver bug must not keep the rest of the outputs unsafe
            self._error(wall, f"writing safe values failed: {_describe(exc)}", "hardware")

    def _restore_outputs(self, now: float) -> None:
        remembered, self._remembered = self._remembered, None
        if not remembered:
            return
        wall = self.clock.wall(now)
        for name, value in remembered.items():
            if value is not None:
                self.store.update(name, value, wall)
        self._write_outputs()

    # ---- the scan -------------------------------------------------------------------------

    def scan(self, now: float) -> None:
        """One cycle: read -> tags -> interpreter -> commands -> write -> report."""
        wall = self.clock.wall(now)
        dt = 0.0 if self._last_scan is None else max(0.0, now - self._last_scan)
        self._last_scan = now
        self.scans += 1
        self._guard("reading hardware", wall, lambda: self._read_hardware(wall))
        self._guard("accumulators", wall, lambda: self._update_accumulators(dt, wall))
        self._update_calculated(wall)
        self._guard("interpreter", wall, lambda: self.interpreter.tick(wall))
        self._process_events(now)
        failures = self.commands.run_scan(now)
        for failure in failures:
            self._command_failed(failure.handle, failure.message, now)
        self._process_events(now)
        self._guard("system tags", wall, lambda: self._update_system_tags(wall))
        self._guard("writing outputs", wall, self._write_outputs)
        self._guard("reporting", wall, lambda: self._report(now, wall))

    def _guard(self, what: str, wall: float, action: Callable[[], object]) -> None:
        try:
            action()
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
                    value = float(
                        self._ureg.Quantity(float(value), _pu(reading.unit)).to(_pu(spec.unit)).m
                    )
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
        store = self.store
        store.update("System State", str(it.state.value), wall)
        store.update("Method Status", str(it.method_status), wall)
        store.update("Run Id", it.run_id or "", wall)
        store.update("Run Time", round(float(it.run_time), 6), wall)
        store.update("Process Time", round(float(it.process_time), 6), wall)
        store.update("Block", it.block or "", wall)
        store.update("Block Time", round(float(it.block_time), 6), wall)
        store.update("Scope Time", round(float(it.scope_time), 6), wall)
        store.update("Base", str(it.base), wall)
        store.update("Run Counter", int(it.run_counter), wall)
        store.update("Mark", it.mark or "", wall)
        store.update("Batch Name", it.batch_name or "", wall)
        store.update("Clock", round(wall, 3), wall)
        self._update_block_amounts(wall)

    def _write_outputs(self, force: bool = False) -> None:
        """Writes outputs that changed since they were last written, and those a command set
        (drivers drop repeated values themselves, except where repeating is the point, such as
        a tare). `force` rewrites every output that has a safe value."""
        changes: dict[str, ScalarValue] = {}
        dirty, self._dirty_outputs = self._dirty_outputs, set()
        for name in self._outputs:
            if name not in self._register_tags:
                continue
            value = self.store[name].value
            if value is None:
                continue
            spec = self._specs[name]
            if (
                name in dirty
                or (force and spec.safe_value is not None)
                or self._written.get(name, UNSET) != value
            ):
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

    # ---- reporting ------------------------------------------------------------------------

    def _report(self, now: float, wall: float) -> None:
        run_id = self.interpreter.run_id or None
        online = getattr(self.sink, "connected", None)
        if online is not None and online != self._sink_online:
            if online and self._sink_online is not None:
                self._next_sample = None  # newly registered: the next sample has every tag
            self._sink_online = bool(online)
        if self._next_sample is None or now >= self._next_sample - 1e-9:
            self._flush_run_log(wall, progress=True)
            if self._next_sample is None:
                self.store.mark_all()
                self._next_sample = now
            while self._next_sample <= now + 1e-9:
                self._next_sample += self.uod.data_log_interval
            tags = self.store.take_sample()
            if tags:
                self._emit(TagsUpdated, time=wall, run_id=run_id, tags=tags, sample=True)
        else:
            tags = self.store.take_live(quiet=_QUIET_TAGS)
            if tags:
                self._emit(TagsUpdated, time=wall, run_id=run_id, tags=tags, sample=False)
        self._report_control(wall)

    def _emit(self, kind: type[Any], /, **fields: Any) -> None:
        """Hands a message to the sink; a failing sink is counted, never allowed to stop the scan
        (the engine must keep the unit under control with or without its link)."""
        try:
            self.sink.emit(kind, **fields)
        except Exception as exc:
            self.sink_errors += 1
            self.last_sink_error = f"{kind.__name__}: {_describe(exc)}"

    def resample(self) -> None:
        """The next scan sends a full sample (after the link registers)."""
        self._next_sample = None

    def _report_control(self, wall: float) -> None:
        it = self.interpreter
        key = (
            it.state,
            it.method_status,
            it.block or "",
            it.run_counter,
            it.batch_name or "",
            self._connected,
        )
        if key == self._control_key:
            return
        self._control_key = key
        self._emit(
            ControlState,
            time=wall,
            run_id=it.run_id or None,
            state=it.state,
            method_status=str(it.method_status),
            block=it.block or "",
            run_time=max(0.0, float(it.run_time)),
            process_time=max(0.0, float(it.process_time)),
            run_counter=int(it.run_counter),
            batch_name=it.batch_name or "",
            connection_status="Connected" if self._connected else "Disconnected",
        )

    def _process_events(self, now: float) -> None:
        wall = self.clock.wall(now)
        for event in self.interpreter.drain_events():
            try:
                self._on_event(event, now, wall)
            except Exception as exc:  # reporting must never break the scan
                self._error(wall, f"event {type(event).__name__}: {_describe(exc)}", "engine")
        self._flush_run_log(wall)

    def _flush_run_log(self, wall: float, *, progress: bool = False) -> None:
        """One RunLog message per scan (not one per line change); progress-only changes are
        held back to the data-log interval so that a long Wait does not send ten messages a
        second."""
        if progress and self._progress_pending:
            for line_id, line in self._progress_pending.items():
                self._log_batch.setdefault(line_id, line)
            self._progress_pending.clear()
        if self._log_batch:
            lines, self._log_batch = list(self._log_batch.values()), {}
            self._emit(RunLog, time=wall, run_id=self._event_run_id, lines=lines)

    def _on_event(self, event: ev.Event, now: float, wall: float) -> None:
        it = self.interpreter
        match event:
            case ev.StateChanged(old=old, new=new):
                if new in _SAFE_STATES and old not in _SAFE_STATES:
                    if new is SystemState.PAUSED:
                        self.commands.suspend_all()
                    self.apply_safe_outputs(now, remember=new is SystemState.PAUSED)
                elif old is SystemState.PAUSED and new in (
                    SystemState.RUNNING,
                    SystemState.HOLDING,
                ):
                    self.commands.resume_all()
                    self._restore_outputs(now)
                elif old is SystemState.PAUSED:  # to Stopped or Restarting: outputs stay safe
                    self._remembered = None
                if new is SystemState.STOPPED:
                    self.commands.cancel_all()
                    for tag in self.store.simulated_names():
                        self.store.simulate_off(tag, wall)
                self.store.update("System State", new.value, wall)
                self._event_state = new
                self._notify(wall, "state", new.value, new.value)
            case ev.RunLogChanged(line=line):
                self._on_run_log(line, wall)
            case ev.MarkSet(text=text):
                self.store.update("Mark", text, wall)
                self._notify(wall, "mark", text, self._event_state.value)
            case ev.LogMessage(level=level, text=text):
                self._log(wall, level, text, self._log_sources.pop(text, "method"))
            case ev.Notification(text=text):
                self._log(wall, "info", f"Notify: {text}", "notify")
            case ev.RunStarted(run_id=run_id, user=user):
                self._flush_run_log(wall, progress=True)
                self._event_run_id = run_id
                self.store.mark_all()  # the run's first sample holds every tag, changed or not
                self._started_once = True
                self._run_start_wall = wall
                self._run_log_values.clear()
                self._line_states.clear()
                self._emit(
                    RunStarted,
                    time=wall,
                    run_id=run_id,
                    started=wall,
                    method_version=int(it.method.version),
                    user=user or self._control_user,
                    run_counter=int(it.run_counter),
                )
            case ev.RunStopped(run_id=run_id, reason=reason, user=user):
                self._flush_run_log(wall, progress=True)
                self._event_run_id = None
                self._emit(
                    RunStopped,
                    time=wall,
                    run_id=run_id,
                    stopped=wall,
                    reason=reason,
                    user=user or self._control_user,
                )
            case ev.MethodChanged(user=user):
                method = it.method
                self._method_hash = _hash("\n".join(line.text for line in method.lines))
                self._emit(
                    Method,
                    time=wall,
                    run_id=it.run_id or None,
                    version=int(method.version),
                    lines=[{"id": line.id, "text": line.text} for line in method.lines],
                    user=user,
                )
            case ev.MethodStateChanged():
                state = it.method_state
                self._emit(
                    MethodState,
                    time=wall,
                    run_id=it.run_id or None,
                    version=int(it.method.version),
                    started=list(state.started),
                    completed=list(state.completed),
                    failed=list(state.failed),
                )

    def _on_run_log(self, line: ev.RunLogLine, wall: float) -> None:
        values = self._process_values()
        if line.id not in self._run_log_values:
            self._run_log_values[line.id] = values
        start_values = self._run_log_values[line.id]
        end_values = values if line.end is not None else {}
        state = line.state
        wire = RunLogLine(
            id=line.id,
            line_id=line.line_id,
            text=line.text,
            start=line.start,
            end=line.end,
            progress=None if line.progress is None else min(1.0, max(0.0, line.progress)),
            state=state,
            user=line.user,
            start_values=start_values,
            end_values=end_values,
            cancellable=bool(line.cancellable),
            forcible=bool(line.forcible),
            error=line.message,
        )
        previous = self._line_states.get(line.id)
        if previous is state and line.end is None:
            self._progress_pending[line.id] = wire
        else:
            self._progress_pending.pop(line.id, None)
            self._log_batch[line.id] = wire
        if previous is not state:
            self._line_states[line.id] = state
            self._notify(wall, "command", line.text, self._event_state.value, detail=state.value)
        if line.end is not None:
            self._run_log_values.pop(line.id, None)

    def _process_values(self) -> dict[str, ScalarValue]:
        return {pv.tag: self._value(pv.tag) for pv in self.uod.process_values}

    def _log(
        self,
        wall: float,
        level: Literal["info", "warning", "error"],
        message: str,
        source: str,
        *,
        notify: bool = True,
    ) -> None:
        entry = ErrorLogEntry(time=wall, level=level, message=message, source=source)
        self.error_log.append(entry)
        if len(self.error_log) > 1000:
            del self.error_log[:500]
        self._emit(ErrorLog, time=wall, run_id=self.interpreter.run_id or None, entries=[entry])
        if notify and level == "error":
            self._notify(wall, "error", message, self._event_state.value)

    def _error(self, wall: float, message: str, source: str, *, notify: bool = True) -> None:
        self._log(wall, "error", message, source, notify=notify)

    def _notify(
        self, wall: float, kind: EventKind, text: str, state: str, detail: str | None = None
    ) -> None:
        if not self.observers:
            return
        # Events are drained after the interpreter's tick, so its run time and state may already
        # be those of after a Stop; the run's own start and the replayed state changes are not.
        run_time = wall - self._run_start_wall if self._run_start_wall is not None else 0.0
        event = EngineEvent(round(max(0.0, run_time), 3), kind, text, state, detail)
        for observer in self.observers:
            try:
                observer(event)
            except Exception as exc:  # a broken console must not break the scan
                self.sink_errors += 1
                self.last_sink_error = f"observer: {_describe(exc)}"

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

    def _value(self, name: str) -> ScalarValue:
        if name in self.store:
            return self.store.value(name)
        return None

    # ---- EngineContext (for the interpreter) ----------------------------------------------

    @property
    def ureg(self) -> Registry:
        return self._ureg

    def tag_names(self) -> Sequence[str]:
        return list(self.store.tags)

    def tag_unit(self, name: str) -> str | None:
        spec = self._specs.get(name)
        return spec.unit if spec else None

    def tag_choices(self, name: str) -> Sequence[str] | None:
        spec = self._specs.get(name)
        return list(spec.choices) if spec and spec.choices else None

    def tag_value(self, name: str) -> ScalarValue:
        return self._value(name)

    def command_names(self) -> Sequence[str]:
        return self.commands.names()

    def validate_command(self, name: str, argument: str | None) -> str | None:
        return self.commands.validate(name, argument)

    def start_command(self, name: str, argument: str | None, run_log_id: str) -> CommandHandle:
        now = self._last_scan if self._last_scan is not None else self.clock.monotonic()
        return self.commands.start(name, argument, run_log_id, now, self._tag_access)

    def cancel_command(self, handle: CommandHandle) -> None:
        self.commands.cancel(handle)

    def simulate(self, tag: str, value: ScalarValue, unit: str | None) -> None:
        spec = self._specs.get(tag)
        if spec is None:
            raise ValueError(f"unknown tag {tag!r}")
        if unit and spec.unit and unit != spec.unit and isinstance(value, int | float):
            value = float(self._ureg.Quantity(float(value), _pu(unit)).to(_pu(spec.unit)).m)
        value = spec.check_value(value)
        self.store.simulate(tag, value, self.clock.wall(self._last_scan or 0.0))

    def simulate_off(self, tag: str) -> None:
        if tag in self.store:
            self.store.simulate_off(tag, self.clock.wall(self._last_scan or 0.0))

    def base_units(self) -> Mapping[str, str]:
        return self.uod.base_units

    # ---- EngineControl (for the link and the CLI) -----------------------------------------

    def _now(self) -> tuple[float, float]:
        now = self.clock.monotonic()
        return now, self.clock.wall(now)

    def registration(self) -> Registration:
        return Registration(
            engine_id=f"{self.computer_name}/{self.uod.name}",
            computer_name=self.computer_name,
            uod_name=self.uod.name,
            uod=self.uod.describe(),
            uod_hash=self.uod_hash,
            method_hash=self._method_hash,
        )

    def control(self, action: ControlAction | str, user: str | None) -> None:
        from engine.lang.interpreter import RunControlError

        now, wall = self._now()
        try:
            action = ControlAction(action)
        except ValueError:
            raise EngineCommandError(f"unknown control action {action!r}") from None
        method = {
            ControlAction.START: self.interpreter.start,
            ControlAction.STOP: self.interpreter.stop,
            ControlAction.PAUSE: self.interpreter.pause,
            ControlAction.UNPAUSE: self.interpreter.unpause,
            ControlAction.HOLD: self.interpreter.hold,
            ControlAction.UNHOLD: self.interpreter.unhold,
            ControlAction.RESTART: self.interpreter.restart,
        }[action]
        self._control_user = user
        try:
            method(wall, user)
        except RunControlError as exc:
            raise EngineCommandError(str(exc)) from None
        finally:
            self._process_events(now)
            self._control_user = None
            self._update_system_tags(wall)
            self._report_control(wall)

    def _interpreter_command(self, action: Callable[[float], object]) -> None:
        """Runs one operator request against the interpreter at wall time: any refusal becomes
        an EngineCommandError for whoever asked, and the events it caused are handled at once
        (not at the next scan), also when it was refused half-way."""
        now, wall = self._now()
        try:
            action(wall)
        except Exception as exc:
            raise EngineCommandError(_plain(exc)) from None
        finally:
            self._process_events(now)

    def inject(self, pcode: str, user: str | None) -> None:
        self._interpreter_command(lambda wall: self.interpreter.inject(pcode, wall, user))

    def set_method(
        self,
        text: str,
        expected_version: int,
        line_ids: list[str | None] | None,
        user: str | None,
    ) -> MethodSaved:
        now, _ = self._now()
        current = int(self.interpreter.method.version)
        if expected_version != current:
            raise EngineCommandError(
                f"method version is {current}, not {expected_version}",
                data={"current_version": current},
            )
        try:
            result = self.interpreter.set_method(text, user=user, line_ids=line_ids)
        except Exception as exc:  # MethodEditError says why the edit was refused
            raise EngineCommandError(_plain(exc)) from None
        finally:
            self._process_events(now)
        return MethodSaved(int(result.version), [_wire_finding(f) for f in result.findings])

    def analyze_method(self, text: str) -> list[Finding]:
        """Analyzer findings for a method text without applying it (SetMethod.dry_run)."""
        from engine.lang.analyzer import analyze

        return [_wire_finding(f) for f in analyze(text, self)]

    def cancel_line(self, run_log_id: str, user: str | None) -> None:
        self._interpreter_command(lambda wall: self.interpreter.cancel(run_log_id, wall, user))

    def force_line(self, run_log_id: str, user: str | None) -> None:
        self._interpreter_command(lambda wall: self.interpreter.force(run_log_id, wall, user))

    @property
    def state(self) -> SystemState:
        return self.interpreter.state

    @property
    def started_once(self) -> bool:
        return self._started_once

    def output_values(self) -> dict[str, ScalarValue]:
        return {name: self.store[name].value for name in self._outputs}


def _wire_finding(f: LangFinding) -> Finding:
    return Finding(
        severity=f.severity,
        code=f.code,
        message=f.message,
        line=max(1, f.line),
        col_start=max(1, f.col_start),
        col_end=max(1, f.col_end),
        suggestion=f.suggestion,
    )


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pu(unit: str) -> str:
    return "percent" if unit == "%" else unit


def _plain(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    for frame in reversed(frames):
        if "/engine/" not in frame.filename or "uod_examples" in frame.filename:
            where = f" ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
            break
    text = str(exc)
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"
