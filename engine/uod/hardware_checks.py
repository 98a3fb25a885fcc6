"""Checks that look inside the built drivers: how each tag meets its register.

These catch what would otherwise only show on the plant: a simulated tag mapped to a name the
model does not have (the tag silently never updates), a choice code the register cannot hold
(code 2 on a coil reads back as 1, so the choice is never shown), and a safe value declared twice
with two values (the operator sees one, the device gets the other).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

from engine.hw.modbus_codec import BIT_TABLES, ModbusRegister, decode_value, encode_value
from engine.sim.hardware import SimulatedHardware
from engine.tags import TagSpec
from engine.uod.assemble import Collected, leaf_parts
from engine.uod.checks import did_you_mean
from engine.uod.draft import Problem
from protocol.models import ScalarValue


def simulated_names(c: Collected) -> list[Problem]:
    """A reading must be mapped to a model output, an output tag to a model input."""
    problems: list[Problem] = []
    for part in leaf_parts(c.parts):
        hw = part.hardware
        if not isinstance(hw, SimulatedHardware):
            continue
        model = type(hw.model).__name__
        outputs = list(hw.model.outputs())
        for tag, name in hw.registers.items():
            spec = c.draft.tags.get(tag)
            if spec is None:
                continue  # reported as a register without a tag
            if spec.direction == "input" and name not in outputs:
                problems.append(
                    (
                        part.line,
                        f"simulated register {tag!r} reads {name!r}, which {model} does not "
                        f"output"
                        + did_you_mean(name, outputs)
                        + f" (outputs: {', '.join(outputs)})",
                    )
                )
            elif spec.direction == "output" and name in outputs:
                problems.append(
                    (
                        part.line,
                        f"simulated register {tag!r} writes {name!r}, which is an output of "
                        f"{model}, not an input",
                    )
                )
    return problems


def choice_codes(c: Collected) -> list[Problem]:
    """Every code must survive the trip through its register: what is written reads back equal."""
    problems: list[Problem] = []
    for spec, declaration in _declared(c):
        for choice, code in spec.codes:
            problem = _code_problem(declaration, code)
            if problem:
                problems.append(
                    (spec.line, f"tag {spec.name!r}: code {code!r} for {choice!r} {problem}")
                )
    return problems


def safe_values_agree(c: Collected) -> list[Problem]:
    """A safe value given on the tag and on its register must be the same value on the wire."""
    problems: list[Problem] = []
    for spec, declaration in _declared(c):
        register_safe = getattr(declaration, "safe_value", None)
        if spec.safe_value is None or register_safe is None:
            continue
        try:
            code = spec.encode(spec.safe_value)
        except ValueError:
            continue  # a choice without a code: reported by the codes check
        wire, register_wire = _on_wire(declaration, code), _on_wire(declaration, register_safe)
        if wire is not None and register_wire is not None and wire != register_wire:
            shown = f"{spec.safe_value!r}" + (f" (code {code!r})" if spec.codes else "")
            problems.append(
                (
                    spec.line,
                    f"tag {spec.name!r}: safe_value {shown} differs from its register's "
                    f"safe_value {register_safe!r}; declare one (operators would see the tag's, "
                    "the device would get the register's)",
                )
            )
    return problems


HARDWARE_CHECKS: tuple[Callable[[Collected], list[Problem]], ...] = (
    simulated_names,
    choice_codes,
    safe_values_agree,
)


def _declared(c: Collected) -> Iterator[tuple[TagSpec, Any]]:
    """(tag, its ModbusRegister or SerialExchange) for every tag a Modbus or serial part serves."""
    for part in leaf_parts(c.parts):
        for attr in ("registers", "exchanges"):
            declared = getattr(part.hardware, attr, None)
            if not isinstance(declared, dict):
                continue
            for tag, declaration in declared.items():
                spec = c.draft.tags.get(tag)
                if spec is not None and _is_driver_declaration(declaration):
                    yield spec, declaration


def _is_driver_declaration(declaration: object) -> bool:
    if isinstance(declaration, ModbusRegister):
        return True
    # A SerialExchange exists only once its module was imported (by a UOD that uses serial):
    # a simulated or Modbus unit must not pay for importing pyserial just to be told no.
    serial_line = sys.modules.get("engine.hw.serial_line")
    return serial_line is not None and isinstance(declaration, serial_line.SerialExchange)


def _code_problem(declaration: Any, code: ScalarValue) -> str | None:
    if isinstance(declaration, ModbusRegister):
        return _register_problem(declaration, code)
    if declaration.kind == "write":
        try:
            declaration.command_for(code)
        except ValueError as exc:
            return f"cannot be sent by its serial exchange: {exc}"
        return None
    if not _fits_reply(declaration.value_type, code):
        return (
            "can never be read by its serial exchange, whose value_type is "
            f"{declaration.value_type!r}"
        )
    return None


def _register_problem(reg: ModbusRegister, code: ScalarValue) -> str | None:
    if reg.table in BIT_TABLES:
        where = f"{reg.table.replace('_', ' ')} {reg.address}"
    else:
        where = f"{reg.table} register {reg.address} ({reg.data_type})"
    if code is None:
        return f"does not fit {where}"
    try:
        back = decode_value(reg, encode_value(reg, code))
    except ValueError as exc:
        return f"does not fit {where}: {exc}"
    if isinstance(back, bool) and not isinstance(code, bool) and code not in (0, 1):
        return f"does not fit {where}, which holds 0 or 1"
    if back != code or isinstance(back, str) != isinstance(code, str):
        return f"does not fit {where}: it would read back as {back!r}"
    return None


def _fits_reply(value_type: str, code: ScalarValue) -> bool:
    if value_type in ("float", "int"):
        if isinstance(code, bool) or not isinstance(code, int | float):
            return False
        return value_type == "float" or float(code).is_integer()
    if value_type == "bool":
        return isinstance(code, bool) or code in (0, 1)
    return isinstance(code, str)


def _on_wire(declaration: Any, value: ScalarValue) -> object:
    """What the driver would send for `value`; None when it cannot (reported by other checks)."""
    if value is None:
        return None
    try:
        if isinstance(declaration, ModbusRegister):
            return encode_value(declaration, value)
        return declaration.command_for(value)
    except ValueError:
        return None
