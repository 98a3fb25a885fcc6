"""The hardware a UOD declares: `hardware`, `modbus`, `serial`, `opcua` and `simulated`.

Each call only records a part (a factory of the engine's clock, its description and the line);
assemble.py builds them, combined into one CompositeHardware when there are several. The
drivers are imported inside the factories, so loading a UOD never pulls in a stack it does not
use (pymodbus, pyserial, asyncua).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

from engine.uod.definition import HardwareFactory
from engine.uod.draft import Draft, HardwarePart
from engine.uod.errors import UodError
from engine.uod.signatures import MODEL_METHODS, model_problem
from protocol.validation import describe

if TYPE_CHECKING:
    from engine.hw.base import Clock, Hardware
    from engine.hw.modbus import ModbusRtu, ModbusTcp
    from engine.hw.modbus_codec import ModbusRegister
    from engine.hw.opcua_config import OpcUaClient, OpcUaNode
    from engine.hw.recovery import RecoveryPolicy
    from engine.hw.serial_line import SerialExchange, SerialPort
    from engine.sim.model import ProcessModel


class HardwareDeclarations:
    """Mixed into UodBuilder; `_line()` is the UOD file's line of the call being made."""

    _d: Draft

    def _line(self) -> int | None:
        raise NotImplementedError

    def hardware(
        self,
        hardware: Hardware | HardwareFactory,
        *,
        description: str | None = None,
    ) -> Self:
        """Hardware of the unit: a Hardware object, or a function of the engine's clock making
        one (for drivers that must run on simulated time). Declaring several parts (also with
        `modbus`, `serial`, `opcua`, `simulated`) combines them into one CompositeHardware."""
        line = self._line()
        if _is_hardware(hardware):
            hw = typing.cast("Hardware", hardware)
            self._add_part(lambda clock: hw, description or _describe(hw), line)
        elif callable(hardware):
            self._add_part(hardware, description or "custom hardware", line)
        else:
            self._d.problems.append((line, f"hardware must be a Hardware object, not {hardware!r}"))
        return self

    def modbus(
        self,
        connection: ModbusTcp | ModbusRtu,
        registers: Sequence[ModbusRegister | Mapping[str, Any]],
        *,
        policy: RecoveryPolicy | None = None,
        name: str | None = None,
    ) -> Self:
        """A Modbus TCP device or RTU bus; each register names its tag."""
        from engine.hw.modbus import ModbusHardware

        line = self._line()

        def factory(clock: Clock) -> Hardware:
            return ModbusHardware(connection, registers, clock=clock, policy=policy, name=name)

        self._add_part(factory, name or connection.describe(), line)
        return self

    def serial(
        self,
        port: SerialPort,
        exchanges: Sequence[SerialExchange | Mapping[str, Any]],
        *,
        policy: RecoveryPolicy | None = None,
        name: str | None = None,
    ) -> Self:
        """A line-based serial instrument; each exchange (request, reply regex) names its tag."""
        from engine.hw.serial_line import SerialHardware

        line = self._line()

        def factory(clock: Clock) -> Hardware:
            return SerialHardware(port, exchanges, clock=clock, policy=policy, name=name)

        self._add_part(factory, name or f"serial {port.url}", line)
        return self

    def opcua(
        self,
        connection: OpcUaClient,
        nodes: Mapping[str, str | OpcUaNode],
        *,
        policy: RecoveryPolicy | None = None,
        name: str | None = None,
    ) -> Self:
        """An OPC UA server; `nodes` maps each tag to its node id ("ns=2;s=FT01"). The tags'
        units are checked against the server's EngineeringUnits when the engine starts."""
        from engine.hw.opcua import OpcUaHardware

        line = self._line()
        draft = self._d

        def factory(clock: Clock) -> Hardware:
            units = {tag: draft.tags[tag].unit for tag in nodes if tag in draft.tags}
            return OpcUaHardware(
                connection,
                nodes,
                units=units,
                scan_interval=draft.scan_interval,
                clock=clock,
                policy=policy,
                name=name,
            )

        self._add_part(factory, name or connection.describe(), line)
        return self

    def simulated(
        self,
        model: ProcessModel | Callable[[], ProcessModel],
        registers: Mapping[str, str],
        *,
        description: str | None = None,
    ) -> Self:
        """Simulated hardware around a process model; `registers` maps tag -> model input/output.

        Pass a model class or factory to get a fresh model per engine. The model must have the
        ProcessModel methods (engine/sim/model.py); one that does not is refused at this line."""
        from engine.sim.hardware import SimulatedHardware

        line = self._line()

        def factory(clock: Clock) -> Hardware:
            return SimulatedHardware(checked_model(model, line), registers, clock)

        self._add_part(factory, description or f"simulated {model_name(model)}", line, True)
        return self

    def _add_part(
        self, factory: HardwareFactory, description: str, line: int | None, sim: bool = False
    ) -> None:
        self._d.parts.append(HardwarePart(factory, description, line, sim))


def _is_hardware(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("snapshot", "write", "write_safe_values", "drain_events"))


def _describe(hw: object) -> str:
    name = getattr(hw, "name", None)
    return str(name) if name else type(hw).__name__


def _model_instance(model: object, line: int | None) -> object:
    """The model itself, or a fresh one from a class or factory (a fresh one per engine)."""
    fresh = isinstance(model, type) or (
        callable(model) and not any(hasattr(model, m) for m in MODEL_METHODS)
    )
    if not fresh:
        return model
    try:
        return typing.cast("Callable[[], object]", model)()
    except Exception as exc:
        raise UodError(
            f"process model {model_name(model)}: cannot create it: {describe(exc)}", line=line
        ) from None


def model_name(model: object) -> str:
    return model.__name__ if isinstance(model, type) else type(model).__name__


def checked_model(model: object, line: int | None) -> ProcessModel:
    """The model to simulate on (a fresh one from a class or factory), refused at `line` when
    it lacks the ProcessModel methods."""
    instance = _model_instance(model, line)
    problem = model_problem(instance)
    if problem:
        raise UodError(problem, line=line)
    return typing.cast("ProcessModel", instance)
