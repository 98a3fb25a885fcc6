"""The builder a UOD file's `create()` uses to declare its unit.

Every declaring call remembers the line of the UOD file it was made from, so that `build()` can
point at the offending line when the definition does not hold together (a register without a tag,
a plot axis naming an unknown tag, a command function that cannot take its argument). Checks
happen at load time because a unit that fails later, in the middle of a run, is far more costly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.lang.units import Registry, new_unit_registry
from engine.tags import Direction, TagSpec
from engine.uod.alarm_builder import AlarmDeclarations
from engine.uod.arguments import ArgumentParser, NoArgument
from engine.uod.assemble import assemble, collect
from engine.uod.checks import CHECKS, button_problems
from engine.uod.definition import (
    CalculatedFunction,
    CalculatedSpec,
    CommandFunction,
    CommandSpec,
    Uod,
)
from engine.uod.draft import AccumulatorDraft, ColumnDraft, Draft, Problem
from engine.uod.errors import UodError
from engine.uod.hardware_builder import HardwareDeclarations
from engine.uod.hardware_checks import HARDWARE_CHECKS
from engine.uod.signatures import accepts, check_function
from engine.uod.simulation_builder import SimulationDeclaration
from protocol.models import (
    ColorRegion,
    PlotAxis,
    ProcessValueChoice,
    ProcessValueDescription,
    ScalarValue,
    SubPlot,
)
from protocol.validation import first_problem

if TYPE_CHECKING:
    pass

__all__ = ["Axis", "ColorRegion", "UodBuilder"]

Axis = PlotAxis
"""A plot axis: `Axis("UV", ["UV01"], y_min=0, y_max=2000, color="#1f77b4")`."""

_THIS_PACKAGE = __file__.rsplit("/", 1)[0]


def _caller_line() -> int | None:
    """Line number in the UOD file of the builder call being made (first frame outside us)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_THIS_PACKAGE):
        frame = frame.f_back  # type: ignore[assignment]
    return frame.f_lineno if frame is not None else None


class UodBuilder(HardwareDeclarations, AlarmDeclarations, SimulationDeclaration):
    """Declares a unit. Call the methods in any order, then return `build()` from `create()`.
    The hardware declarations (hardware, modbus, serial, opcua, simulated) are in
    hardware_builder.py, the alarm declarations (alarm, deviation_alarm, discrete_alarm) in
    alarm_builder.py."""

    def __init__(self, name: str, *, author_name: str = "", author_email: str = "") -> None:
        self._d = Draft(
            name=name,
            line=_caller_line(),
            author_name=author_name,
            author_email=author_email,
        )

    # ---- identity (hardware: hardware_builder.py) -----------------------------------------

    def author(self, name: str, email: str = "") -> UodBuilder:
        self._d.author_name, self._d.author_email = name, email
        return self

    # ---- tags -----------------------------------------------------------------------------

    def reading(
        self,
        name: str,
        *,
        unit: str | None = None,
        choices: Sequence[str] = (),
        codes: Mapping[str, ScalarValue] | None = None,
        description: str = "",
    ) -> UodBuilder:
        """A value read from the hardware; `codes` maps each choice to the hardware's value."""
        line = _caller_line()
        return self._tag(
            TagSpec(
                name,
                "reading",
                unit=unit,
                direction="input",
                choices=tuple(choices),
                description=description,
                line=line,
                codes=self._codes(name, choices, codes, line),
            )
        )

    def _codes(
        self,
        name: str,
        choices: Sequence[str],
        codes: Mapping[str, ScalarValue] | None,
        line: int | None,
    ) -> tuple[tuple[str, ScalarValue], ...]:
        if not codes:
            return ()
        if set(codes) != set(choices):
            self._d.problems.append(
                (line, f"tag {name!r}: codes must give exactly one code per choice")
            )
        if len(set(codes.values())) != len(codes):
            self._d.problems.append((line, f"tag {name!r}: two choices share a code"))
        return tuple(codes.items())

    def choice(
        self,
        name: str,
        choices: Sequence[str],
        *,
        safe_value: str | None = None,
        direction: Direction = "output",
        codes: Mapping[str, ScalarValue] | None = None,
        command_only: bool = False,
        description: str = "",
    ) -> UodBuilder:
        """A categorical value (valve position, mode); an output unless told otherwise.

        `codes` maps each choice to what the hardware holds (e.g. {"VA01": 1, ...})."""
        line = _caller_line()
        if not choices:
            self._d.problems.append((line, f"choice tag {name!r} needs at least one choice"))
        initial = safe_value if safe_value is not None else None
        return self._tag(
            TagSpec(
                name,
                "choice",
                direction=direction,
                choices=tuple(choices),
                safe_value=safe_value,
                initial=initial,
                description=description,
                line=line,
                codes=self._codes(name, choices, codes, line),
                command_only=command_only,
            )
        )

    def entry(
        self,
        name: str,
        *,
        unit: str | None = None,
        safe_value: float | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
        direction: Direction = "output",
        command_only: bool = False,
        description: str = "",
    ) -> UodBuilder:
        """A number the unit sets (a setpoint); an output unless told otherwise.

        `command_only=True` declares an output that has no safe value (a tare or zero trigger):
        it is written only when a command sets it, never on Pause or Stop."""
        return self._tag(
            TagSpec(
                name,
                "entry",
                unit=unit,
                direction=direction,
                safe_value=safe_value,
                initial=safe_value,
                minimum=minimum,
                maximum=maximum,
                description=description,
                line=_caller_line(),
                command_only=command_only,
            )
        )

    def calculated(
        self,
        name: str,
        function: CalculatedFunction,
        *,
        unit: str | None = None,
        choices: Sequence[str] = (),
        description: str = "",
    ) -> UodBuilder:
        """A tag computed each scan from the others: `function(values) -> value`."""
        line = _caller_line()
        if not callable(function):
            self._d.problems.append((line, f"calculated tag {name!r}: function is not callable"))
        self._d.calculated.append(CalculatedSpec(name, function))
        return self._tag(
            TagSpec(
                name,
                "calculated",
                unit=unit,
                choices=tuple(choices),
                description=description,
                line=line,
            )
        )

    def accumulator(
        self, name: str, *, source: str, unit: str, description: str = ""
    ) -> UodBuilder:
        """A tag integrating `source` over time (a flow into a volume), in `unit`."""
        line = _caller_line()
        self._d.accumulators[name] = AccumulatorDraft(source, None, line)
        return self._tag(
            TagSpec(name, "accumulator", unit=unit, initial=0.0, description=description, line=line)
        )

    # ---- base units -----------------------------------------------------------------------

    def volume_totalizer(
        self,
        flow: str,
        *,
        unit: str = "L",
        extra_units: Sequence[str] = ("mL",),
    ) -> UodBuilder:
        """`Accumulated Volume` and `Block Volume` integrating the flow tag; makes `unit` and
        `extra_units` usable as `Base:` units."""
        line = _caller_line()
        self._tag(TagSpec("Accumulated Volume", "accumulator", unit=unit, initial=0.0, line=line))
        self._tag(TagSpec("Block Volume", "accumulator", unit=unit, initial=0.0, line=line))
        self._d.accumulators["Accumulated Volume"] = AccumulatorDraft(flow, "Block Volume", line)
        for base in (unit, *extra_units):
            self._d.base_units[base] = ("Accumulated Volume", line)
        return self

    def column_volume(self, volume: float | str, *, unit: str = "L") -> UodBuilder:
        """`Accumulated CV` and `Block CV` from the totalizer; `volume` is a number (in `unit`) or
        the name of an entry tag holding it. Makes `CV` usable as a `Base:` unit."""
        line = _caller_line()
        fixed = float(volume) if isinstance(volume, int | float) else None
        tag = volume if isinstance(volume, str) else None
        if fixed is not None and fixed <= 0:
            self._d.problems.append((line, f"column volume must be positive, not {volume}"))
        self._d.column = ColumnDraft(fixed, tag, unit, line)
        self._tag(TagSpec("Accumulated CV", "accumulator", unit="CV", initial=0.0, line=line))
        self._tag(TagSpec("Block CV", "accumulator", unit="CV", initial=0.0, line=line))
        self._d.base_units["CV"] = ("Accumulated CV", line)
        return self

    def base_unit(self, unit: str, tag: str) -> UodBuilder:
        """A further `Base:` unit whose timeline is measured by `tag` (e.g. `g` from a balance)."""
        self._d.base_units[unit] = (tag, _caller_line())
        return self

    def define_unit(self, definition: str) -> UodBuilder:
        """A pint unit definition for units pint lacks, e.g. `NTU = [turbidity]` (then `mNTU`);
        pint is then loaded for it (engine/lang/units.py)."""
        self._d.units.append((definition, _caller_line()))
        return self

    # ---- commands -------------------------------------------------------------------------

    def command(
        self,
        name: str,
        run: CommandFunction,
        *,
        argument: ArgumentParser | None = None,
        description: str = "",
        group: str | None = None,
        init: Callable[..., Any] | None = None,
        finalize: Callable[..., Any] | None = None,
    ) -> UodBuilder:
        """A command: `run(cmd, value)` (or `run(cmd)` without argument) is called every scan
        until it returns something other than False; `value` is what `argument` parsed.

        A new instance cancels a running one of the same name and of the same `group`. `init(cmd,
        value)` runs before the first call, `finalize(cmd)` after the last, however it ended.
        """
        line = _caller_line()
        if name in self._d.commands:
            self._d.problems.append((line, f"command {name!r} is declared twice"))
        parser: ArgumentParser = argument if argument is not None else NoArgument()
        takes_value = True
        if not callable(run):
            self._d.problems.append((line, f"command {name!r}: run is not callable"))
        else:
            problem, takes_value = check_function(run, parser, f"command {name!r}")
            if problem:
                self._d.problems.append((line, problem))
        if init is not None:
            problem, _ = check_function(init, parser, f"command {name!r} init")
            if problem:
                self._d.problems.append((line, problem))
        if finalize is not None and not accepts(finalize, 1):
            self._d.problems.append((line, f"command {name!r} finalize must take (cmd)"))
        self._d.commands[name] = CommandSpec(
            name=name,
            run=run,
            parser=parser,
            description=description,
            group=group,
            init=init,
            finalize=finalize,
            takes_value=takes_value,
            line=line,
        )
        return self

    # ---- what operators see ---------------------------------------------------------------

    def process_value(self, tag: str) -> UodBuilder:
        """A read-only value shown to operators (and logged at the start and end of each line)."""
        self._d.process_values.append((ProcessValueDescription(tag=tag), _caller_line()))
        return self

    def process_value_entry(
        self, tag: str, *, command: str, units: Sequence[str] = ()
    ) -> UodBuilder:
        """A value operators can change by typing: runs `command: <value> <unit>`."""
        self._d.process_values.append(
            (
                ProcessValueDescription(tag=tag, kind="entry", command=command, units=list(units)),
                _caller_line(),
            )
        )
        return self

    def process_value_choice(self, tag: str, buttons: Mapping[str, str]) -> UodBuilder:
        """A value with buttons; each button label injects its P-code."""
        choices = [ProcessValueChoice(label=k, pcode=v) for k, v in buttons.items()]
        self._d.process_values.append(
            (ProcessValueDescription(tag=tag, kind="choice", choices=choices), _caller_line())
        )
        return self

    def subplot(
        self,
        *axes: PlotAxis,
        ratio: float = 1.0,
        color_regions: Mapping[str, Mapping[str, str]] | None = None,
    ) -> UodBuilder:
        """A plot panel; `color_regions` maps a categorical tag to value -> CSS colour."""
        line = _caller_line()
        try:
            sub = SubPlot(
                axes=list(axes),
                ratio=ratio,
                color_regions=[
                    ColorRegion(tag=tag, colors=dict(colors))
                    for tag, colors in (color_regions or {}).items()
                ],
            )
        except Exception as exc:
            self._d.problems.append((line, f"subplot: {_validation_line(exc)}"))
            return self
        self._d.subplots.append((sub, line))
        return self

    def x_axis(self, *choices: str) -> UodBuilder:
        """Tags offered as plot x axis; the first is the default."""
        self._d.x_axis_choices = list(choices)
        self._d.x_axis_line = _caller_line()
        return self

    def annotations(self, *tags: str) -> UodBuilder:
        """Tags whose changes become plot annotations (default: Mark)."""
        self._d.annotations = list(tags)
        return self

    def require_roles(
        self, *roles: str, control: str | Sequence[str] = (), view: str | Sequence[str] = ()
    ) -> UodBuilder:
        """Who may control the unit (`roles` or `control`) and who may only watch it (`view`).

        Without `view`, users lacking a control role do not see the unit at all: a unit behind
        `require_roles("operator")` stays invisible to viewers, as it always has."""
        line = _caller_line()
        control_roles = [*roles, *([control] if isinstance(control, str) else control)]
        view_roles = [view] if isinstance(view, str) else list(view)
        for role in (*control_roles, *view_roles):
            if not isinstance(role, str) or not role.strip():
                self._d.problems.append(
                    (line, f"require_roles: a role must be a name, not {role!r}")
                )
                return self
        if view_roles and not control_roles and not self._d.roles:
            self._d.problems.append(
                (
                    line,
                    "require_roles: view roles need control roles too, e.g. "
                    'require_roles(control="operator", view="viewer")',
                )
            )
            return self
        self._d.roles.extend(control_roles)
        self._d.view_roles.extend(view_roles)
        return self

    def require_approved_methods(self) -> UodBuilder:
        """Regulated use: the aggregator starts this unit only with an approved version of its
        method library, unchanged since it was loaded, and refuses method edits during a run."""
        self._d.require_approved = True
        return self

    def data_log_interval(self, seconds: float) -> UodBuilder:
        self._d.data_log_interval = seconds
        self._d.interval_line = _caller_line()
        return self

    def scan_interval(self, seconds: float) -> UodBuilder:
        self._d.scan_interval = seconds
        self._d.interval_line = _caller_line()
        return self

    # ---- build ----------------------------------------------------------------------------

    def _line(self) -> int | None:
        return _caller_line()

    def _tag(self, spec: TagSpec) -> UodBuilder:
        if spec.name in self._d.tags:
            self._d.problems.append((spec.line, f"tag {spec.name!r} is declared twice"))
        self._d.tags[spec.name] = spec
        return self

    def build(self, *, filename: str = "", ureg: Registry | None = None) -> Uod:
        """The checked definition; raises UodError naming the first problem and its line."""
        collected, problems = collect(self._d, ureg if ureg is not None else new_unit_registry())
        for check in (*CHECKS, *HARDWARE_CHECKS):
            problems += check(collected)
        _raise_first([*self._d.problems, *problems], filename)
        uod = assemble(collected, filename)
        _raise_first(button_problems(uod, self._d.process_values), filename)
        return uod


def _raise_first(problems: list[Problem], filename: str) -> None:
    if problems:
        # The earliest line first: the author fixes the file top to bottom.
        problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
        line, message = problems[0]
        raise UodError(message, filename=filename, line=line, more=len(problems) - 1)


def _validation_line(exc: Exception) -> str:
    return first_problem(exc).line() if isinstance(exc, ValidationError) else str(exc)
