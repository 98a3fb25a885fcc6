"""The engine: one unit's tags, commands, P-code interpreter and run control.

`Engine` is assembled from three layers, one module each, every layer building on the one
before it:

- engine/reporting.py (`LinkReporting`): interpreter events -> protocol messages, samples, the
  error log and the `simulate` observers;
- engine/scan.py (`ScanPipeline`): the scan cycle, hardware reads and output writes, safe values;
- engine/operator_interface.py (`OperatorInterface`): what the link and the CLI may ask
  (`EngineControl`).

This module only builds the engine and answers the interpreter's questions (`EngineContext`).
Import `Engine` (and `EngineEvent`, `NullSink`) from here; the layers are not used alone.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Mapping, Sequence

from engine.clock import Clock
from engine.describe import plain as _plain
from engine.describe import text_hash
from engine.hw.base import Hardware
from engine.lang.api import AnalyzerContext, CommandHandle
from engine.lang.units import Registry, convert, define_unit, new_unit_registry
from engine.operator_interface import OperatorInterface
from engine.ports import EngineCommandError, MessageSink
from engine.reporting import EngineEvent, EventKind, NullSink, Observer
from engine.scan import _pu
from engine.tags import TagSpecLookup, TagStore
from engine.uod.definition import Uod
from protocol.models import ScalarValue

__all__ = ["Engine", "EngineEvent", "EventKind", "NullSink", "Observer"]


class Engine(OperatorInterface, TagSpecLookup):
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
        # A registry takes ~0.1 s to build; tests and benchmarks may share one between engines.
        self._ureg: Registry = ureg if ureg is not None else new_unit_registry()
        for definition in uod.unit_definitions:
            define_unit(self._ureg, definition)
        if hardware is None:
            if uod.hardware_factory is None:
                raise ValueError(f"UOD {uod.name!r} declares no hardware")
            hardware = uod.hardware_factory(clock.monotonic)
        self.computer_name = computer_name or socket.gethostname()
        self.uod_hash = uod_hash
        self.store = TagStore.from_specs(uod.tags, clock.wall(clock.monotonic()))
        self._init_reporting(sink, observers, text_hash(method))
        self._init_scan(hardware)
        self.interpreter = Interpreter(self, new_run_id=lambda: uuid.uuid4().hex)
        if method:
            try:
                self.interpreter.set_method(method, user=None)
            except Exception as exc:
                raise EngineCommandError(_plain(exc)) from None

    # ---- EngineContext (for the interpreter) ----------------------------------------------

    def _analyzer_context(self) -> AnalyzerContext:
        return self

    @property
    def ureg(self) -> Registry:
        return self._ureg

    def tag_names(self) -> Sequence[str]:
        return list(self.store.tags)

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
            value = convert(self._ureg, float(value), _pu(unit), _pu(spec.unit))
        value = spec.check_value(value)
        self.store.simulate(tag, value, self.clock.wall(self._last_scan or 0.0))

    def simulate_off(self, tag: str) -> None:
        if tag in self.store:
            self.store.simulate_off(tag, self.clock.wall(self._last_scan or 0.0))

    def base_units(self) -> Mapping[str, str]:
        return self.uod.base_units
