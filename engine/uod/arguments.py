"""Argument parsers for UOD commands.

A parser turns the text after `Command: ` into the value the command function receives, and
describes itself for the UI. The analyzer calls the same parser through `validate_command`, so a
method is checked with exactly the rules the command will apply when it runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from engine.lang.units import convert, factor, is_unit
from protocol.models import ArgumentDescription

if TYPE_CHECKING:
    from engine.lang.units import Registry

_NUMBER = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


class ArgumentParser(Protocol):
    """Anything with `parse` and `describe` can parse a command argument."""

    @property
    def output_type(self) -> type:
        """What `parse` returns; load-time checks compare it with the command's annotation."""
        ...

    def parse(self, text: str | None, ureg: Registry) -> Any:
        """The value for the command function; raises ValueError with a message for the user."""
        ...

    def describe(self) -> ArgumentDescription: ...


@dataclass(frozen=True)
class NoArgument:
    """The command takes no argument (`Stop pump`)."""

    output_type: type = field(default=type(None))

    def parse(self, text: str | None, ureg: Registry) -> None:
        if text is not None and text.strip():
            raise ValueError(f"takes no argument, got {text.strip()!r}")
        return None

    def describe(self) -> ArgumentDescription:
        return ArgumentDescription(kind="none")


@dataclass(frozen=True)
class Number:
    """A number with one of `units`, converted to `unit` (default: the first of `units`).

    With `units` empty the number is plain. `default_unit` lets `PU01: 50` mean 50 %.
    """

    units: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str | None = None
    default_unit: str | None = None
    output_type: type = float

    def __init__(
        self,
        units: list[str] | tuple[str, ...] | str = (),
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        unit: str | None = None,
        default_unit: str | None = None,
    ) -> None:
        units_tuple = (units,) if isinstance(units, str) else tuple(units)
        object.__setattr__(self, "units", units_tuple)
        object.__setattr__(self, "minimum", minimum)
        object.__setattr__(self, "maximum", maximum)
        object.__setattr__(self, "unit", unit or (units_tuple[0] if units_tuple else None))
        object.__setattr__(self, "default_unit", default_unit)
        object.__setattr__(self, "output_type", float)

    def parse(self, text: str | None, ureg: Registry) -> float:
        if text is None or not text.strip():
            raise ValueError(f"needs a number{self._unit_hint()}")
        match = _NUMBER.match(text)
        if not match:
            raise ValueError(f"needs a number{self._unit_hint()}, not {text.strip()!r}")
        number = float(match.group(1))
        given = match.group(2) or None
        if given is None:
            given = self.default_unit
        if self.units:
            if given is None:
                raise ValueError(f"needs a unit: one of {', '.join(self.units)}")
            if given not in self.units:
                raise ValueError(
                    f"unit {given!r} is not accepted; use one of {', '.join(self.units)}"
                )
            if self.unit is not None and given != self.unit:
                number = convert(ureg, number, _pint_unit(given), _pint_unit(self.unit))
            # Limits are in the target unit.
        elif given is not None:
            raise ValueError(f"takes a plain number, not one with unit {given!r}")
        if not math.isfinite(number):
            raise ValueError("needs a finite number")
        shown = f" {self.unit}" if self.unit else ""
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"must be at least {self.minimum:g}{shown}, not {number:g}{shown}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"must be at most {self.maximum:g}{shown}, not {number:g}{shown}")
        return number

    def _unit_hint(self) -> str:
        return f" with a unit ({', '.join(self.units)})" if self.units else ""

    def check_units(self, ureg: Registry) -> str | None:
        """A problem with the declared units (unknown to pint, or incompatible), or None."""
        for unit in (*self.units, *([self.unit] if self.unit else [])):
            if not is_unit(ureg, _pint_unit(unit)):
                return f"unknown unit {unit!r}"
        if self.unit is not None:
            for unit in self.units:
                try:
                    factor(ureg, _pint_unit(unit), _pint_unit(self.unit))
                except Exception:
                    return f"unit {unit!r} cannot be converted to {self.unit!r}"
        if self.default_unit is not None and self.default_unit not in self.units:
            return f"default_unit {self.default_unit!r} is not one of the units"
        return None

    def describe(self) -> ArgumentDescription:
        return ArgumentDescription(
            kind="number", units=list(self.units), minimum=self.minimum, maximum=self.maximum
        )


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words (`Inlet: VA02`)."""

    choices: tuple[str, ...]
    output_type: type = str

    def __init__(self, choices: list[str] | tuple[str, ...]) -> None:
        object.__setattr__(self, "choices", tuple(choices))
        object.__setattr__(self, "output_type", str)
        if not self.choices:
            raise ValueError("Choice needs at least one choice")

    def parse(self, text: str | None, ureg: Registry) -> str:
        value = (text or "").strip()
        if value not in self.choices:
            shown = repr(value) if value else "nothing"
            raise ValueError(f"must be one of {', '.join(self.choices)}, not {shown}")
        return value

    def describe(self) -> ArgumentDescription:
        return ArgumentDescription(kind="choice", choices=list(self.choices))


@dataclass(frozen=True)
class Text:
    """Free text, optionally matching a regular expression (full match)."""

    pattern: str | None = None
    output_type: type = str
    _compiled: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __init__(self, pattern: str | None = None) -> None:
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "output_type", str)
        object.__setattr__(self, "_compiled", re.compile(pattern) if pattern else None)

    def parse(self, text: str | None, ureg: Registry) -> str:
        value = (text or "").strip()
        if self._compiled is not None and not self._compiled.fullmatch(value):
            raise ValueError(f"{value!r} does not match {self.pattern}")
        return value

    def describe(self) -> ArgumentDescription:
        return ArgumentDescription(kind="text", pattern=self.pattern)


def _pint_unit(unit: str) -> str:
    """P-code writes percent as `%`; pint spells it `percent`."""
    return "percent" if unit == "%" else unit
