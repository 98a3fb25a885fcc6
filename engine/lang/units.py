"""Units: a small table of the units methods and the examples use, pint for anything else.

pint's import and a registry are ~5.6 MB of the running engine's ~49 MB (issue 15 item 3, the
45 MB target) and ~0.05-0.1 s of its start, while a unit typically needs a dozen spellings. So a
`Units` answers from `engine.lang.unit_table` (answers taken from pint and checked against it in
tests/lang/test_unit_table.py, down to the last bit of every factor) until it is asked about a
spelling outside the table, a conversion the table cannot make, a definition, or pint's own API
(`ureg.Quantity` in a UOD's command); then it builds pint's registry and from then on every answer
of that `Units` comes from pint, so table answers and pint objects never meet. One `Units` per
engine: never a module-level one (the one prepared ahead for the next engine is handed out once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

from engine.lang.unit_table import FACTORS, INTEGRALS, OFFSETS, UNITS

if TYPE_CHECKING:
    import pint

TIME_UNITS = ("s", "min", "h")

COLUMN_VOLUME = "CV = [column_volume]"


class Units:
    """The engine's unit registry (see the module docstring for why it is not pint's)."""

    __slots__ = ("_pint",)

    def __init__(self) -> None:
        self._pint: pint.UnitRegistry[Any] | None = None

    @property
    def pint(self) -> pint.UnitRegistry[Any]:
        """pint's registry, built (and pint imported) on first use; from then on it answers."""
        if self._pint is None:
            self._pint = _build_pint()
        return self._pint

    @property
    def uses_pint(self) -> bool:
        return self._pint is not None

    def __getattr__(self, name: str) -> Any:
        """pint's API (`Quantity`, `Unit`, ...) keeps working on the registry a UOD's command
        gets as `cmd.ureg`; touching it switches this registry to pint for good."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.pint, name)


Registry: TypeAlias = Units

_prepared: list[Registry] = []


def prepare_unit_registry() -> None:
    """Builds the next `new_unit_registry()` now, once: the CLI does it before forking the UOD
    probe (engine/uod_probe.py), so that the probe child and this process each take their own
    copy of one registry instead of both building one. With the table a registry costs nothing
    until pint is needed; the hand-over is kept so that both still share whatever it holds."""
    if not _prepared:
        _prepared.append(Units())


def new_unit_registry() -> Registry:
    """A fresh registry: pint's default units plus column volumes (CV)."""
    if _prepared:
        return _prepared.pop()
    return Units()


def _build_pint() -> pint.UnitRegistry[Any]:
    """pint's parsed-definitions cache (in the user's cache folder) cuts building a registry
    from ~0.2 s to ~0.02 s; without a writable cache folder the registry is built from
    scratch."""
    import pint

    try:
        ureg: pint.UnitRegistry[Any] = pint.UnitRegistry(cache_folder=":auto:")
    except OSError:
        ureg = pint.UnitRegistry()
    ureg.define(COLUMN_VOLUME)
    return ureg


def define_unit(ureg: Registry, definition: str) -> None:
    """Let a UOD add a unit; defining the same name twice (or a name pint already has, such as
    `AU`) is harmless. A new name goes to pint."""
    name = definition.split("=", 1)[0].strip()
    if is_unit(ureg, name):
        return
    ureg.pint.define(definition)


def is_unit(ureg: Registry, text: str) -> bool:
    if ureg._pint is None and text in UNITS:
        return True
    try:
        ureg.pint.Unit(text)
    except Exception:
        return False
    return True


def factor(ureg: Registry, unit: str, target: str) -> float:
    """Multiplicative factor from `unit` to `target`; raises if they are incompatible."""
    return convert(ureg, 1.0, unit, target)


def convert(ureg: Registry, value: float, unit: str, target: str) -> float:
    """Converts one value (offset units such as degC included); raises on incompatible units
    (pint's error: the table leaves every failure to pint)."""
    if ureg._pint is None:
        found = _table_convert(value, unit, target)
        if found is not None:
            return found
    return float(ureg.pint.Quantity(value, unit).to(target).magnitude)


def _table_convert(value: float, unit: str, target: str) -> float | None:
    """pint's arithmetic step for step, so that the result is pint's to the last bit: the same
    unit returns the value as it is; multiplicative units multiply by pint's factor; an offset
    unit goes through kelvin (value * scale + offset, then (value - offset) / scale)."""
    source, goal = UNITS.get(unit), UNITS.get(target)
    if source is None or goal is None or source[0] != goal[0]:
        return None
    if source[1] == goal[1]:
        return float(value)
    offset_source, offset_goal = OFFSETS.get(unit), OFFSETS.get(target)
    if offset_source is None and offset_goal is None:
        return float(value * FACTORS[unit, target])
    if offset_source is not None:
        value = value * offset_source[0] + offset_source[1]
    if offset_goal is not None:
        value = (value - offset_goal[1]) / offset_goal[0]
    return float(value)


def integral_factor(ureg: Registry, rate_unit: str, unit: str) -> float:
    """`unit`s per (`rate_unit` x second): what an accumulator adds per second of a reading of
    1; raises when the units do not fit."""
    if ureg._pint is None:
        found = INTEGRALS.get((rate_unit, unit))
        if found is not None:
            return found
    quantity = ureg.pint.Quantity(1.0, f"({rate_unit}) * second")
    return float(quantity.to(unit).magnitude)


def compatible(ureg: Registry, unit: str, target: str) -> bool:
    if ureg._pint is None:
        source, goal = UNITS.get(unit), UNITS.get(target)
        if source is not None and goal is not None:
            return source[0] == goal[0]
    try:
        return bool(ureg.pint.Unit(unit).dimensionality == ureg.pint.Unit(target).dimensionality)
    except Exception:
        return False


def is_time_unit(ureg: Registry, unit: str) -> bool:
    return compatible(ureg, unit, "s")
