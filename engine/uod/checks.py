"""The load-time checks of a UOD: each a small function of the collected definition.

Every check returns the problems it found as (line, message) and knows nothing of the others, so
a new rule is one new function added to `CHECKS`. `build()` runs them all, then reports the
earliest line first and counts the rest: the author fixes the file top to bottom.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from engine.alarms.evaluator import compile_alarm, tag_info_of
from engine.alarms.spec import AlarmSpec
from engine.context import UodContext
from engine.lang.analyzer import analyze
from engine.lang.instructions import BUILTINS
from engine.lang.suggest import suggest
from engine.system_tags import SYSTEM_TAG_NAMES, system_tag_specs
from engine.uod.assemble import Collected, accumulator_factor, known_unit, volume_factor
from engine.uod.definition import Uod
from engine.uod.draft import Problem
from protocol.models import ProcessValueDescription

Check = Callable[[Collected], list[Problem]]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    best = suggest(word, list(candidates))
    return f" (did you mean {best!r}?)" if best else ""


def unit_name(c: Collected) -> list[Problem]:
    return [] if c.draft.name.strip() else [(c.draft.line, "the unit needs a name")]


def tag_declarations(c: Collected) -> list[Problem]:
    problems: list[Problem] = []
    for spec in c.draft.tags.values():
        if spec.name in SYSTEM_TAG_NAMES and spec.kind != "accumulator":
            problems.append((spec.line, f"tag {spec.name!r} is a system tag; choose another name"))
        if any(op in spec.name for op in "<>=!"):
            problems.append((spec.line, f"tag name {spec.name!r} may not contain < > = !"))
        if spec.unit is not None and spec.unit != "CV" and not known_unit(c.ureg, spec.unit):
            problems.append(
                (
                    spec.line,
                    f"tag {spec.name!r}: unknown unit {spec.unit!r} (declare it with define_unit)",
                )
            )
        if spec.safe_value is not None:
            try:
                spec.check_value(spec.safe_value)
            except ValueError as exc:
                problems.append((spec.line, f"safe value: {exc}"))
    return problems


def hardware_declared(c: Collected) -> list[Problem]:
    if c.draft.parts:
        return []
    return [
        (c.draft.line, "no hardware declared (use hardware(), modbus(), serial() or simulated())")
    ]


def registers_have_tags(c: Collected) -> list[Problem]:
    problems: list[Problem] = []
    tags = c.draft.tags
    for tag in c.register_tags:
        spec = tags.get(tag)
        if spec is None:
            problems.append(
                (
                    c.draft.hardware_line,
                    f"register {tag!r} has no tag; declare it" + did_you_mean(tag, tags),
                )
            )
        elif spec.kind not in ("reading", "choice", "entry"):
            problems.append((spec.line, f"tag {tag!r} has a register but is a {spec.kind} tag"))
    return problems


def readings_have_registers(c: Collected) -> list[Problem]:
    if not c.parts:  # no hardware, or it could not be built: that is the problem to report
        return []
    return [
        (spec.line, f"reading {spec.name!r} has no register in the hardware")
        for spec in c.draft.tags.values()
        if spec.kind == "reading" and spec.name not in c.register_tags
    ]


def outputs_have_safe_values(c: Collected) -> list[Problem]:
    return [
        (spec.line, f"output {spec.name!r} needs a safe_value")
        for spec in c.draft.tags.values()
        if spec.direction == "output"
        and spec.name in c.register_tags
        and spec.safe_value is None
        and not spec.command_only
    ]


def accumulators(c: Collected) -> list[Problem]:
    problems: list[Problem] = []
    tags = c.draft.tags
    for name, acc in c.draft.accumulators.items():
        source = tags.get(acc.source)
        if source is None:
            problems.append(
                (
                    acc.line,
                    f"{name!r} integrates unknown tag {acc.source!r}"
                    + did_you_mean(acc.source, tags),
                )
            )
            continue
        if source.unit is None:
            problems.append((acc.line, f"{name!r} integrates {acc.source!r}, which has no unit"))
            continue
        unit = tags[name].unit or ""
        try:
            accumulator_factor(c.ureg, source.unit, unit)
        except Exception:
            problems.append(
                (
                    acc.line,
                    f"{name!r}: {acc.source!r} in {source.unit} over time does not give {unit}",
                )
            )
    return problems


def column_volume(c: Collected) -> list[Problem]:
    column, tags = c.draft.column, c.draft.tags
    if column is None:
        return []
    if "Accumulated Volume" not in tags:
        return [(column.line, "column_volume needs volume_totalizer first")]
    problems: list[Problem] = []
    volume_unit = tags["Accumulated Volume"].unit or "L"
    try:
        volume_factor(c.ureg, volume_unit, column.unit)
    except Exception:
        problems.append(
            (
                column.line,
                f"column volume unit {column.unit!r} is not a volume like {volume_unit!r}",
            )
        )
    if column.tag is not None and (column.tag not in tags or tags[column.tag].kind != "entry"):
        problems.append(
            (
                column.line,
                f"column volume tag {column.tag!r} must be an entry tag"
                + did_you_mean(column.tag, tags),
            )
        )
    return problems


def base_units(c: Collected) -> list[Problem]:
    problems: list[Problem] = []
    for unit, (tag, line) in c.draft.base_units.items():
        if tag not in c.names:
            problems.append(
                (line, f"base unit {unit!r} uses unknown tag {tag!r}" + did_you_mean(tag, c.names))
            )
        elif unit != "CV" and not known_unit(c.ureg, unit):
            problems.append((line, f"base unit {unit!r} is not a unit pint knows"))
    return problems


def commands(c: Collected) -> list[Problem]:
    problems: list[Problem] = []
    for cmd in c.draft.commands.values():
        if cmd.name in SYSTEM_TAG_NAMES or not cmd.name.strip():
            problems.append((cmd.line, f"{cmd.name!r} cannot be a command name"))
        check = getattr(cmd.parser, "check_units", None)
        if check is not None:
            problem = check(c.ureg)
            if problem:
                problems.append((cmd.line, f"command {cmd.name!r}: {problem}"))
    return problems


def process_values(c: Collected) -> list[Problem]:
    problems: list[Problem] = []
    known = c.draft.commands
    for pv, line in c.draft.process_values:
        if pv.tag not in c.names:
            problems.append(
                (
                    line,
                    f"process value names unknown tag {pv.tag!r}" + did_you_mean(pv.tag, c.names),
                )
            )
        if pv.command is not None and pv.command not in known:
            problems.append(
                (
                    line,
                    f"process value {pv.tag!r} runs unknown command {pv.command!r}"
                    + did_you_mean(pv.command, known),
                )
            )
        for button in pv.choices:
            first = button.pcode.split(":", 1)[0].strip()
            if first and first not in known and first not in BUILTINS:
                problems.append(
                    (
                        line,
                        f"button {button.label!r} runs unknown command {first!r}"
                        + did_you_mean(first, known),
                    )
                )
    return problems


def plot_axes(c: Collected) -> list[Problem]:
    return [
        (
            line,
            f"plot axis {axis.label!r} names unknown tag {tag!r}" + did_you_mean(tag, c.names),
        )
        for sub, line in c.draft.subplots
        for axis in sub.axes
        for tag in axis.tags
        if tag not in c.names
    ]


def colour_regions(c: Collected) -> list[Problem]:
    problems: list[Problem] = []
    for sub, line in c.draft.subplots:
        for region in sub.color_regions:
            spec = c.draft.tags.get(region.tag)
            if spec is None and region.tag not in c.names:
                problems.append(
                    (
                        line,
                        f"colour region names unknown tag {region.tag!r}"
                        + did_you_mean(region.tag, c.names),
                    )
                )
            elif spec is not None:
                if not spec.choices:
                    problems.append((line, f"colour region tag {region.tag!r} is not categorical"))
                problems += [
                    (
                        line,
                        f"colour region {region.tag!r}: {value!r} is not one of "
                        + ", ".join(spec.choices),
                    )
                    for value in region.colors
                    if value not in spec.choices
                ]
    return problems


def x_axis(c: Collected) -> list[Problem]:
    return [
        (
            c.draft.x_axis_line,
            f"x axis choice names unknown tag {tag!r}" + did_you_mean(tag, c.names),
        )
        for tag in c.draft.x_axis_choices or ["Run Time"]
        if tag not in c.names
    ]


def annotation_tags(c: Collected) -> list[Problem]:
    return [
        (None, f"annotation tag {tag!r} is unknown" + did_you_mean(tag, c.names))
        for tag in c.draft.annotations
        if tag not in c.names
    ]


def intervals(c: Collected) -> list[Problem]:
    d = c.draft
    problems: list[Problem] = []
    if not 0 < d.scan_interval <= 10:
        problems.append((d.interval_line, "scan interval must be in (0, 10] seconds"))
    if d.data_log_interval < d.scan_interval:
        problems.append(
            (d.interval_line, "data log interval cannot be shorter than the scan interval")
        )
    return problems


def alarms(c: Collected) -> list[Problem]:
    """Each alarm's numbers in range and its conditions and tags as the engine will evaluate
    them (engine.alarms.compile_alarm, the same code)."""
    problems: list[Problem] = []
    specs = {spec.name: spec for spec in (*system_tag_specs(), *c.draft.tags.values())}
    info = tag_info_of(specs.values())
    for alarm in c.draft.alarms:
        problem = alarm_number_problem(alarm) or compile_alarm(alarm, info, specs, c.ureg)
        if isinstance(problem, str):
            problems.append((alarm.line, problem))
    return problems


def alarm_number_problem(alarm: AlarmSpec) -> str | None:
    numbers = {
        "delay": alarm.delay,
        "off_delay": alarm.off_delay,
        "deadband": alarm.deadband,
        "max_shelve_minutes": alarm.max_shelve_minutes,
    }
    for field, value in numbers.items():
        if value is not None and not (isinstance(value, int | float) and 0 <= value < math.inf):
            return f"alarm {alarm.name!r}: {field} must be a number >= 0, not {value!r}"
    limit = alarm.limit
    if alarm.setpoint_tag is not None and not (
        isinstance(limit, int | float) and 0 < limit < math.inf
    ):
        return f"alarm {alarm.name!r}: the deviation limit must be a number > 0, not {limit!r}"
    escalation = alarm.escalation_minutes
    if escalation is not None and not (
        isinstance(escalation, int | float) and 0 < escalation < math.inf
    ):
        return f"alarm {alarm.name!r}: escalation_minutes must be a number > 0, not {escalation!r}"
    if not alarm.name.strip() or len(alarm.name) > 128:
        return f"alarm name {alarm.name!r} must be 1 to 128 characters"
    return None


CHECKS: tuple[Check, ...] = (
    unit_name,
    tag_declarations,
    hardware_declared,
    registers_have_tags,
    readings_have_registers,
    outputs_have_safe_values,
    accumulators,
    column_volume,
    base_units,
    commands,
    process_values,
    plot_axes,
    colour_regions,
    x_axis,
    annotation_tags,
    intervals,
    alarms,
)
"""Run in this order, then those of hardware_checks; problems are then sorted by line (stable,
so ties keep this order)."""


def button_problems(
    uod: Uod, process_values: Iterable[tuple[ProcessValueDescription, int | None]]
) -> list[Problem]:
    """The P-code behind every process-value button and entry must pass the analyzer, so that an
    operator's click is never the first time it is checked. Runs on the assembled Uod."""
    context = UodContext(uod, uod.unit_registry)
    problems: list[Problem] = []
    for pv, line in process_values:
        spec = uod.commands.get(pv.command or "")
        if spec is not None:
            for unit in pv.units:
                problem = context.validate_command(spec.name, f"1 {unit}")
                if problem is not None and "unit" in problem:
                    problems.append(
                        (
                            line,
                            f"process value {pv.tag!r}: command {spec.name!r} does not accept "
                            f"unit {unit!r}",
                        )
                    )
        for button in pv.choices:
            errors = [
                f for f in analyze(button.pcode, context, injected=True) if f.severity == "error"
            ]
            if errors:
                problems.append(
                    (
                        line,
                        f"process value {pv.tag!r} button {button.label!r}: {errors[0].full_message}",
                    )
                )
    return problems
