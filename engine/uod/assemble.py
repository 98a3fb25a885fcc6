"""From a draft to a `Uod`: the unit registry, the hardware built once, the derived specs.

`collect` derives what every check needs (so no check builds hardware or defines units again);
`assemble` makes the `Uod` once the checks found nothing. The conversions used by both (an
accumulator's factor, the column volume's) live here so a check and the result cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.clock import FakeClock
from engine.lang.units import Registry, define_unit, factor, integral_factor, is_unit
from engine.system_tags import SYSTEM_TAG_NAMES, system_tag_specs
from engine.uod.definition import AccumulatorSpec, ColumnVolumeSpec, HardwareFactory, Uod
from engine.uod.draft import Draft, HardwarePart, Problem
from engine.uod.errors import UodError
from protocol.models import PlotConfiguration
from protocol.validation import describe

if TYPE_CHECKING:
    from engine.hw.base import Clock, Hardware


@dataclass(frozen=True)
class BuiltPart:
    """One driver as the engine would build it (drivers connect only when started)."""

    hardware: object
    line: int | None  # of the builder call that declared it


@dataclass(frozen=True)
class Collected:
    """The draft and what the checks read from it: the registry with the UOD's own units, the
    built hardware, the tags it serves, and every tag name (declared and system)."""

    draft: Draft
    ureg: Registry
    parts: tuple[BuiltPart, ...]
    register_tags: tuple[str, ...]
    names: frozenset[str]


def collect(draft: Draft, ureg: Registry) -> tuple[Collected, list[Problem]]:
    problems: list[Problem] = []
    for definition, line in draft.units:
        try:
            define_unit(ureg, definition)
        except Exception as exc:
            problems.append((line, f"unit definition {definition!r}: {exc}"))
    parts: tuple[BuiltPart, ...] = ()
    factory = hardware_factory(draft.parts)
    if factory is not None:
        try:
            parts = _built_parts(draft.parts, factory(FakeClock().monotonic))
        except UodError as exc:
            problems.append((exc.line, exc.message))
        except Exception as exc:
            problems.append((draft.hardware_line, f"hardware: {describe(exc)}"))
    register_tags = tuple(tag for part in parts for tag in hardware_tags(part.hardware))
    names = frozenset(draft.tags) | frozenset(SYSTEM_TAG_NAMES)
    return Collected(draft, ureg, parts, register_tags, names), problems


def _built_parts(declared: Sequence[HardwarePart], hw: object) -> tuple[BuiltPart, ...]:
    if len(declared) == 1:
        return (BuiltPart(hw, declared[0].line),)
    built = getattr(hw, "parts", [])
    return tuple(BuiltPart(part, d.line) for part, d in zip(built, declared, strict=True))


def hardware_factory(parts: Sequence[HardwarePart]) -> HardwareFactory | None:
    """One factory for the unit: the single part's, or a CompositeHardware of all of them."""
    factories = [part.factory for part in parts]
    if not factories:
        return None
    if len(factories) == 1:
        return factories[0]

    def composite(clock: Clock) -> Hardware:
        from engine.hw.composite import CompositeHardware

        return CompositeHardware([factory(clock) for factory in factories])

    return composite


def simulation_factory(d: Draft, hardware: HardwareFactory | None) -> HardwareFactory | None:
    """The declared process model, else the hardware when all of it is simulated models."""
    if d.simulation is not None:
        return d.simulation.factory
    return hardware if d.parts and all(part.simulated for part in d.parts) else None


def hardware_tags(hw: object) -> Iterable[str]:
    """Tags a driver serves: its `registers` (Modbus, simulated), or those of its parts."""
    for attr in ("registers", "exchanges"):
        declared = getattr(hw, attr, None)
        if isinstance(declared, Mapping):
            return list(declared)
    tags = getattr(hw, "tags", None)
    if callable(tags):
        return list(tags())
    if isinstance(tags, Iterable) and not isinstance(tags, str):
        return list(tags)
    out: list[str] = []
    for attr in ("parts", "children", "drivers", "hardware"):
        parts = getattr(hw, attr, None)
        if isinstance(parts, Mapping):
            parts = list(parts.values())
        if isinstance(parts, list | tuple):
            for part in parts:
                out.extend(hardware_tags(part))
            return out
    return out


def leaf_parts(parts: Iterable[BuiltPart]) -> Iterable[BuiltPart]:
    """Every single driver, also those inside a CompositeHardware a UOD built itself."""
    for part in parts:
        inner = getattr(part.hardware, "parts", None)
        if isinstance(inner, list | tuple):
            yield from leaf_parts(BuiltPart(p, part.line) for p in inner)
        else:
            yield part


def pint_unit(unit: str) -> str:
    return "percent" if unit == "%" else unit


def known_unit(ureg: Registry, unit: str) -> bool:
    return is_unit(ureg, pint_unit(unit))


def accumulator_factor(ureg: Registry, source_unit: str, unit: str) -> float:
    """Accumulator units per (source unit x second); raises when the units do not fit."""
    return integral_factor(ureg, pint_unit(source_unit), pint_unit(unit))


def volume_factor(ureg: Registry, volume_unit: str, column_unit: str) -> float:
    return factor(ureg, volume_unit, pint_unit(column_unit))


def assemble(c: Collected, filename: str) -> Uod:
    """The Uod of a draft the checks passed (so every conversion here succeeds)."""
    d = c.draft
    tags = d.tags
    accumulators = tuple(
        AccumulatorSpec(
            name,
            acc.source,
            accumulator_factor(c.ureg, tags[acc.source].unit or "", tags[name].unit or ""),
            acc.block_tag,
        )
        for name, acc in d.accumulators.items()
    )
    column = None
    if d.column is not None:
        volume_unit = tags["Accumulated Volume"].unit or "L"
        factor = volume_factor(c.ureg, volume_unit, d.column.unit)
        column = ColumnVolumeSpec("Accumulated Volume", d.column.volume, d.column.tag, factor)
    x_choices = d.x_axis_choices or ["Run Time"]
    factory = hardware_factory(d.parts)
    return Uod(
        name=d.name,
        filename=filename,
        author_name=d.author_name,
        author_email=d.author_email,
        hardware_description="; ".join(part.description for part in d.parts),
        hardware_factory=factory,
        simulation_factory=simulation_factory(d, factory),
        register_tags=c.register_tags,
        tags=(*system_tag_specs(), *tags.values()),
        commands=dict(d.commands),
        calculated=tuple(d.calculated),
        accumulators=accumulators,
        column_volume=column,
        process_values=tuple(pv for pv, _ in d.process_values),
        plot=PlotConfiguration(
            subplots=[sub for sub, _ in d.subplots],
            x_axis_choices=x_choices,
            x_axis=x_choices[0],
            annotation_tags=d.annotations,
        ),
        base_units={unit: tag for unit, (tag, _) in d.base_units.items()},
        unit_definitions=tuple(definition for definition, _ in d.units),
        required_roles=tuple(dict.fromkeys(d.roles)),
        view_roles=tuple(dict.fromkeys(d.view_roles)),
        require_approved_methods=d.require_approved,
        data_log_interval=d.data_log_interval,
        scan_interval=d.scan_interval,
        alarms=tuple(d.alarms),
        unit_registry=c.ureg,
    )
