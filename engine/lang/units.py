"""Unit handling with pint. One registry per engine: never a module-level one (the one
prepared ahead for the next engine is handed out once)."""

from __future__ import annotations

from typing import Any, TypeAlias

import pint

Registry: TypeAlias = pint.UnitRegistry[Any]

TIME_UNITS = ("s", "min", "h")


_prepared: list[Registry] = []


def prepare_unit_registry() -> None:
    """Builds the next `new_unit_registry()` now, once: the CLI does it before forking the UOD
    probe (engine/uod_probe.py), so that the probe child and this process each take their own
    copy of one registry instead of both building one (~15 ms of the child's CPU at every
    start, issue 15 item 3). The registry is still fresh to whoever takes it: nothing uses it
    before that."""
    if not _prepared:
        _prepared.append(_build_registry())


def new_unit_registry() -> Registry:
    """A fresh registry with the units P-code adds to pint's defaults (column volumes)."""
    if _prepared:
        return _prepared.pop()
    return _build_registry()


def _build_registry() -> Registry:
    """pint's parsed-definitions cache (in the user's cache folder) cuts building a registry
    from ~0.2 s to ~0.02 s, a large share of the engine's start-up; without a writable cache
    folder the registry is built from scratch."""
    try:
        ureg: Registry = pint.UnitRegistry(cache_folder=":auto:")
    except OSError:
        ureg = pint.UnitRegistry()
    define_unit(ureg, "CV = [column_volume]")
    return ureg


def define_unit(ureg: Registry, definition: str) -> None:
    """Let a UOD add a unit; defining the same name twice is harmless."""
    name = definition.split("=", 1)[0].strip()
    if is_unit(ureg, name):
        return
    ureg.define(definition)


def is_unit(ureg: Registry, text: str) -> bool:
    try:
        ureg.Unit(text)
    except Exception:
        return False
    return True


def factor(ureg: Registry, unit: str, target: str) -> float:
    """Multiplicative factor from `unit` to `target`; raises if they are incompatible."""
    return float(ureg.Quantity(1.0, unit).to(target).magnitude)


def convert(ureg: Registry, value: float, unit: str, target: str) -> float:
    """Converts one value (offset units such as degC included); raises on incompatible units."""
    return float(ureg.Quantity(value, unit).to(target).magnitude)


def compatible(ureg: Registry, unit: str, target: str) -> bool:
    try:
        return bool(ureg.Unit(unit).dimensionality == ureg.Unit(target).dimensionality)
    except Exception:
        return False


def is_time_unit(ureg: Registry, unit: str) -> bool:
    return compatible(ureg, unit, "s")
