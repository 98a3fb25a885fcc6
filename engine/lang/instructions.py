"""The built-in instructions (pcode.md sections 4-5) and the argument checks the analyzer and the
interpreter share, so that what passes analysis is exactly what runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from engine.lang.api import ScalarValue
from engine.lang.conditions import ConditionProblem, TagInfo, split_condition
from engine.lang.units import Registry, convert, is_time_unit, is_unit


class Arg(Enum):
    NONE = "none"
    REQUIRED = "required"
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    argument: Arg
    # Section 7: these lines can be neither cancelled nor forced, even while waiting.
    fixed: bool = False


BUILTINS: Mapping[str, Builtin] = MappingProxyType(
    {
        b.name: b
        for b in (
            Builtin("Block", Arg.REQUIRED, fixed=True),
            Builtin("End block", Arg.NONE),
            Builtin("End blocks", Arg.NONE),
            Builtin("Watch", Arg.REQUIRED),
            Builtin("Alarm", Arg.REQUIRED),
            Builtin("Macro", Arg.REQUIRED, fixed=True),
            Builtin("Call macro", Arg.REQUIRED, fixed=True),
            Builtin("Base", Arg.REQUIRED),
            Builtin("Wait", Arg.REQUIRED),
            Builtin("Mark", Arg.REQUIRED, fixed=True),
            Builtin("Info", Arg.REQUIRED),
            Builtin("Warning", Arg.REQUIRED),
            Builtin("Error", Arg.REQUIRED),
            Builtin("Pause", Arg.OPTIONAL),
            Builtin("Unpause", Arg.NONE),
            Builtin("Hold", Arg.OPTIONAL),
            Builtin("Unhold", Arg.NONE),
            Builtin("Stop", Arg.NONE),
            Builtin("Restart", Arg.NONE),
            Builtin("Increment run counter", Arg.NONE),
            Builtin("Run counter", Arg.REQUIRED),
            Builtin("Batch", Arg.REQUIRED),
            Builtin("Simulate", Arg.REQUIRED),
            Builtin("Simulate off", Arg.REQUIRED),
            Builtin("Notify", Arg.REQUIRED),
        )
    }
)

BODY = frozenset({"Block", "Watch", "Alarm", "Macro"})
CONDITIONAL = frozenset({"Watch", "Alarm"})
OPERATOR_ONLY = frozenset({"Unpause", "Unhold"})
TIME_BASES = ("s", "min", "h")

_QUANTITY = re.compile(r"\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*")


class ArgumentError(ValueError):
    """An argument that does not fit its instruction; the message is shown to the user."""


def parse_duration(text: str, ureg: Registry) -> float:
    """`<n> s|min|h` (any pint time unit) in seconds."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ArgumentError(f"Expected a duration like '5 s', '2 min' or '1 h', not '{text}'")
    unit = match.group(2)
    if not unit:
        raise ArgumentError(f"Missing time unit in '{text}' (s, min or h)")
    if not is_unit(ureg, unit) or not is_time_unit(ureg, unit):
        raise ArgumentError(f"'{unit}' is not a time unit (s, min or h)")
    return convert(ureg, float(match.group(1)), unit, "s")


def base_units_of(base_units: Mapping[str, str]) -> list[str]:
    return [*TIME_BASES, *(u for u in base_units if u not in TIME_BASES)]


def check_base(text: str, base_units: Mapping[str, str]) -> str:
    if text in TIME_BASES or text in base_units:
        return text
    raise ArgumentError(
        f"Unknown base unit '{text}' (available: {', '.join(base_units_of(base_units))})"
    )


def parse_run_counter(text: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ArgumentError(f"Run counter must be a non-negative integer, not '{text}'")
    return int(text)


@dataclass(frozen=True, slots=True)
class SimulateArg:
    tag: str
    value: ScalarValue
    unit: str | None


def parse_simulate(text: str, tags: TagInfo, ureg: Registry) -> SimulateArg:
    """`<tag> = <value> [unit]`; a numeric value is converted to the tag's unit."""
    parsed = split_condition(text)
    if isinstance(parsed, ConditionProblem):
        raise ArgumentError(f"Expected '<tag> = <value> [unit]': {parsed.message}")
    if parsed.op != "=":
        raise ArgumentError(f"Expected '<tag> = <value> [unit]', not '{parsed.op}'")
    if parsed.tag not in tags:
        raise ArgumentError(f"Unknown tag '{parsed.tag}'")
    choices = tags.choices(parsed.tag)
    unit = tags.unit(parsed.tag)
    if choices is not None:
        if parsed.value_text not in choices:
            raise ArgumentError(
                f"'{parsed.value_text}' is not a value of '{parsed.tag}' "
                f"(one of: {', '.join(choices)})"
            )
        return SimulateArg(parsed.tag, parsed.value_text, None)
    if parsed.number is None:
        if unit is not None:
            raise ArgumentError(f"'{parsed.tag}' is numeric: expected a number")
        return SimulateArg(parsed.tag, parsed.value_text, None)
    if unit is None:
        if parsed.unit is not None:
            raise ArgumentError(f"'{parsed.tag}' has no unit (remove '{parsed.unit}')")
        return SimulateArg(parsed.tag, parsed.number, None)
    if parsed.unit is None:
        raise ArgumentError(f"Missing unit: '{parsed.tag}' is in {unit}")
    if parsed.unit == unit:
        return SimulateArg(parsed.tag, parsed.number, unit)
    try:
        value = convert(ureg, parsed.number, parsed.unit, unit)
    except Exception as exc:
        raise ArgumentError(f"Unit '{parsed.unit}' does not fit '{parsed.tag}' in {unit}") from exc
    return SimulateArg(parsed.tag, value, unit)


def parse_simulate_off(text: str, tags: TagInfo) -> str:
    if text not in tags:
        raise ArgumentError(f"Unknown tag '{text}'")
    return text
