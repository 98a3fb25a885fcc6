"""The builder a UOD file's `create()` uses to declare its unit.

Every declaring call remembers the line of the UOD file it was made from, so that `build()` can
point at the offending line when the definition does not hold together (a register without a tag,
a plot axis naming an unknown tag, a command function that cannot take its argument). Checks
happen at load time because a unit that fails later, in the middle of a run, is far more costly.
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from engine.lang.units import Registry, define_unit, new_unit_registry
from engine.tags import Direction, TagSpec
from engine.uod.arguments import ArgumentParser, Choice, NoArgument, Number
from engine.uod.definition import (
    AccumulatorSpec,
    CalculatedFunction,
    CalculatedSpec,
    ColumnVolumeSpec,
    CommandFunction,
    CommandSpec,
    HardwareFactory,
    Uod,
)
from engine.uod.errors import UodError
from protocol.models import (
    ColorRegion,
    PlotAxis,
    PlotConfiguration,
    ProcessValueChoice,
    ProcessValueDescription,
    ScalarValue,
    SubPlot,
)
from protocol.validation import describe, first_problem

if TYPE_CHECKING:
    from engine.hw.base import Clock, Hardware
    from engine.hw.modbus import ModbusRtu, ModbusTcp
    from engine.hw.modbus_codec import ModbusRegister
    from engine.hw.recovery import RecoveryPolicy
    from engine.hw.serial_line import SerialExchange, SerialPort
    from engine.sim.model import ProcessModel

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


class UodBuilder:
    """Declares a unit. Call the methods in any order, then return `build()` from `create()`."""

    def __init__(self, name: str, *, author_name: str = "", author_email: str = "") -> None:
        self._line = _caller_line()
        self._name = name
        self._author_name = author_name
        self._author_email = author_email
        self._parts: list[tuple[HardwareFactory, str, int | None]] = []
        self._hardware_line: int | None = None
        self._tags: dict[str, TagSpec] = {}
        self._commands: dict[str, CommandSpec] = {}
        self._calculated: list[CalculatedSpec] = []
        self._accumulators: list[AccumulatorSpec] = []
        self._accumulator_units: dict[str, tuple[str, str | None, int | None]] = {}
        self._column: tuple[float | None, str | None, str, int | None] | None = None
        self._process_values: list[tuple[ProcessValueDescription, int | None]] = []
        self._subplots: list[tuple[SubPlot, int | None]] = []
        self._x_axis_choices: list[str] | None = None
        self._x_axis_line: int | None = None
        self._annotations: list[str] = ["Mark"]
        self._base_units: dict[str, tuple[str, int | None]] = {}
        self._units: list[tuple[str, int | None]] = []
        self._roles: list[str] = []
        self._data_log_interval = 1.0
        self._scan_interval = 0.1
        self._interval_line: int | None = None
        self._problems: list[tuple[int | None, str]] = []

    # ---- identity and hardware ------------------------------------------------------------

    def author(self, name: str, email: str = "") -> UodBuilder:
        self._author_name, self._author_email = name, email
        return self

    def hardware(
        self,
        hardware: Hardware | HardwareFactory,
        *,
        description: str | None = None,
    ) -> UodBuilder:
        """Hardware of the unit: a Hardware object, or a function of the engine's clock making
        one (for drivers that must run on simulated time). Declaring several parts (also with
        `modbus`, `serial`, `simulated`) combines them into one CompositeHardware."""
        line = _caller_line()
        if _is_hardware(hardware):
            hw = typing.cast("Hardware", hardware)
            self._add_part(lambda clock: hw, description or _describe(hw), line)
        elif callable(hardware):
            self._add_part(hardware, description or "custom hardware", line)
        else:
            self._problems.append((line, f"hardware must be a Hardware object, not {hardware!r}"))
        return self

    def modbus(
        self,
        connection: ModbusTcp | ModbusRtu,
        registers: Sequence[ModbusRegister | Mapping[str, Any]],
        *,
        policy: RecoveryPolicy | None = None,
        name: str | None = None,
    ) -> UodBuilder:
        """A Modbus TCP device or RTU bus; each register names its tag."""
        from engine.hw.modbus import ModbusHardware

        line = _caller_line()

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
    ) -> UodBuilder:
        """A line-based serial instrument; each exchange (request, reply regex) names its tag."""
        from engine.hw.serial_line import SerialHardware

        line = _caller_line()

        def factory(clock: Clock) -> Hardware:
            return SerialHardware(port, exchanges, clock=clock, policy=policy, name=name)

        self._add_part(factory, name or f"serial {port.url}", line)
        return self

    def simulated(
        self,
        model: ProcessModel | Callable[[], ProcessModel],
        registers: Mapping[str, str],
        *,
        description: str | None = None,
    ) -> UodBuilder:
        """Simulated hardware around a process model; `registers` maps tag -> model input/output.

        Pass a model class or factory to get a fresh model per engine."""
        from engine.sim.hardware import SimulatedHardware

        line = _caller_line()

        def factory(clock: Clock) -> Hardware:
            instance = model() if isinstance(model, type) or not hasattr(model, "step") else model
            return SimulatedHardware(typing.cast("ProcessModel", instance), registers, clock)

        self._add_part(factory, description or f"simulated {_model_name(model)}", line)
        return self

    def _add_part(self, factory: HardwareFactory, description: str, line: int | None) -> None:
        self._parts.append((factory, description, line))
        if self._hardware_line is None:
            self._hardware_line = line

    def _hardware_factory(self) -> HardwareFactory | None:
        parts = [factory for factory, _, _ in self._parts]
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]

        def composite(clock: Clock) -> Hardware:
            from engine.hw.composite import CompositeHardware

            return CompositeHardware([part(clock) for part in parts])

        return composite

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
            self._problems.append(
                (line, f"tag {name!r}: codes must give exactly one code per choice")
            )
        if len(set(codes.values())) != len(codes):
            self._problems.append((line, f"tag {name!r}: two choices share a code"))
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
            self._problems.append((line, f"choice tag {name!r} needs at least one choice"))
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
            self._problems.append((line, f"calculated tag {name!r}: function is not callable"))
        self._calculated.append(CalculatedSpec(name, function))
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
        self._accumulator_units[name] = (source, None, line)
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
        self._accumulator_units["Accumulated Volume"] = (flow, "Block Volume", line)
        for base in (unit, *extra_units):
            self._base_units[base] = ("Accumulated Volume", line)
        return self

    def column_volume(self, volume: float | str, *, unit: str = "L") -> UodBuilder:
        """`Accumulated CV` and `Block CV` from the totalizer; `volume` is a number (in `unit`) or
        the name of an entry tag holding it. Makes `CV` usable as a `Base:` unit."""
        line = _caller_line()
        fixed = float(volume) if isinstance(volume, int | float) else None
        tag = volume if isinstance(volume, str) else None
        if fixed is not None and fixed <= 0:
            self._problems.append((line, f"column volume must be positive, not {volume}"))
        self._column = (fixed, tag, unit, line)
        self._tag(TagSpec("Accumulated CV", "accumulator", unit="CV", initial=0.0, line=line))
        self._tag(TagSpec("Block CV", "accumulator", unit="CV", initial=0.0, line=line))
        self._base_units["CV"] = ("Accumulated CV", line)
        return self

    def base_unit(self, unit: str, tag: str) -> UodBuilder:
        """A further `Base:` unit whose timeline is measured by `tag` (e.g. `g` from a balance)."""
        self._base_units[unit] = (tag, _caller_line())
        return self

    def define_unit(self, definition: str) -> UodBuilder:
        """A pint unit definition for units pint lacks, e.g. `AU = [absorbance]` (then `mAU`)."""
        self._units.append((definition, _caller_line()))
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
        if name in self._commands:
            self._problems.append((line, f"command {name!r} is declared twice"))
        parser: ArgumentParser = argument if argument is not None else NoArgument()
        takes_value = True
        if not callable(run):
            self._problems.append((line, f"command {name!r}: run is not callable"))
        else:
            problem, takes_value = _check_function(run, parser, f"command {name!r}")
            if problem:
                self._problems.append((line, problem))
        if init is not None:
            problem, _ = _check_function(init, parser, f"command {name!r} init")
            if problem:
                self._problems.append((line, problem))
        if finalize is not None and not _accepts(finalize, 1):
            self._problems.append((line, f"command {name!r} finalize must take (cmd)"))
        self._commands[name] = CommandSpec(
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
        self._process_values.append((ProcessValueDescription(tag=tag), _caller_line()))
        return self

    def process_value_entry(
        self, tag: str, *, command: str, units: Sequence[str] = ()
    ) -> UodBuilder:
        """A value operators can change by typing: runs `command: <value> <unit>`."""
        self._process_values.append(
            (
                ProcessValueDescription(tag=tag, kind="entry", command=command, units=list(units)),
                _caller_line(),
            )
        )
        return self

    def process_value_choice(self, tag: str, buttons: Mapping[str, str]) -> UodBuilder:
        """A value with buttons; each button label injects its P-code."""
        choices = [ProcessValueChoice(label=k, pcode=v) for k, v in buttons.items()]
        self._process_values.append(
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
            self._problems.append((line, f"subplot: {_validation_line(exc)}"))
            return self
        self._subplots.append((sub, line))
        return self

    def x_axis(self, *choices: str) -> UodBuilder:
        """Tags offered as plot x axis; the first is the default."""
        self._x_axis_choices = list(choices)
        self._x_axis_line = _caller_line()
        return self

    def annotations(self, *tags: str) -> UodBuilder:
        """Tags whose changes become plot annotations (default: Mark)."""
        self._annotations = list(tags)
        return self

    def require_roles(self, *roles: str) -> UodBuilder:
        self._roles.extend(roles)
        return self

    def data_log_interval(self, seconds: float) -> UodBuilder:
        self._data_log_interval = seconds
        self._interval_line = _caller_line()
        return self

    def scan_interval(self, seconds: float) -> UodBuilder:
        self._scan_interval = seconds
        self._interval_line = _caller_line()
        return self

    # ---- build ----------------------------------------------------------------------------

    def _tag(self, spec: TagSpec) -> UodBuilder:
        if spec.name in self._tags:
            self._problems.append((spec.line, f"tag {spec.name!r} is declared twice"))
        self._tags[spec.name] = spec
        return self

    def build(self, *, filename: str = "", ureg: Registry | None = None) -> Uod:
        """The checked definition; raises UodError naming the first problem and its line."""
        problems = list(self._problems)

        def fail(line: int | None, message: str) -> None:
            problems.append((line, message))

        from engine.system_tags import SYSTEM_TAG_NAMES, system_tag_specs

        if not self._name.strip():
            fail(self._line, "the unit needs a name")
        if ureg is None:
            ureg = new_unit_registry()
        for definition, line in self._units:
            try:
                define_unit(ureg, definition)
            except Exception as exc:
                fail(line, f"unit definition {definition!r}: {exc}")
        for spec in self._tags.values():
            if spec.name in SYSTEM_TAG_NAMES and spec.kind != "accumulator":
                fail(spec.line, f"tag {spec.name!r} is a system tag; choose another name")
            if any(op in spec.name for op in "<>=!"):
                fail(spec.line, f"tag name {spec.name!r} may not contain < > = !")
            if spec.unit is not None and spec.unit != "CV" and not _known_unit(ureg, spec.unit):
                fail(
                    spec.line,
                    f"tag {spec.name!r}: unknown unit {spec.unit!r} (declare it with define_unit)",
                )
            if spec.safe_value is not None:
                try:
                    spec.check_value(spec.safe_value)
                except ValueError as exc:
                    fail(spec.line, f"safe value: {exc}")
        names = set(self._tags) | set(SYSTEM_TAG_NAMES)

        # Hardware and registers.
        register_tags: tuple[str, ...] = ()
        hardware_factory = self._hardware_factory()
        if hardware_factory is None:
            fail(
                self._line,
                "no hardware declared (use hardware(), modbus(), serial() or simulated())",
            )
        else:
            register_tags = self._register_tags(hardware_factory, fail)
            for tag in register_tags:
                reg_spec = self._tags.get(tag)
                if reg_spec is None:
                    fail(
                        self._hardware_line,
                        f"register {tag!r} has no tag; declare it" + _did_you_mean(tag, self._tags),
                    )
                elif reg_spec.kind not in ("reading", "choice", "entry"):
                    fail(reg_spec.line, f"tag {tag!r} has a register but is a {reg_spec.kind} tag")
            for spec in self._tags.values():
                if spec.kind == "reading" and spec.name not in register_tags:
                    fail(spec.line, f"reading {spec.name!r} has no register in the hardware")
                if (
                    spec.direction == "output"
                    and spec.name in register_tags
                    and spec.safe_value is None
                    and not spec.command_only
                ):
                    fail(spec.line, f"output {spec.name!r} needs a safe_value")

        # Accumulators and base units.
        accumulators: list[AccumulatorSpec] = []
        for name, (source, block_tag, line) in self._accumulator_units.items():
            src = self._tags.get(source)
            if src is None:
                fail(
                    line,
                    f"{name!r} integrates unknown tag {source!r}"
                    + _did_you_mean(source, self._tags),
                )
                continue
            unit = self._tags[name].unit or ""
            if src.unit is None:
                fail(line, f"{name!r} integrates {source!r}, which has no unit")
                continue
            try:
                factor = float(
                    ureg.Quantity(1.0, f"({_pu(src.unit)}) * second").to(_pu(unit)).magnitude
                )
            except Exception:
                fail(line, f"{name!r}: {source!r} in {src.unit} over time does not give {unit}")
                continue
            accumulators.append(AccumulatorSpec(name, source, factor, block_tag))
        column: ColumnVolumeSpec | None = None
        if self._column is not None:
            fixed, cv_tag, cv_unit, line = self._column
            if "Accumulated Volume" not in self._tags:
                fail(line, "column_volume needs volume_totalizer first")
            else:
                vol_unit = self._tags["Accumulated Volume"].unit or "L"
                try:
                    factor = float(ureg.Quantity(1.0, vol_unit).to(_pu(cv_unit)).magnitude)
                except Exception:
                    fail(line, f"column volume unit {cv_unit!r} is not a volume like {vol_unit!r}")
                    factor = 1.0
                if cv_tag is not None and (
                    cv_tag not in self._tags or self._tags[cv_tag].kind != "entry"
                ):
                    fail(
                        line,
                        f"column volume tag {cv_tag!r} must be an entry tag"
                        + _did_you_mean(cv_tag, self._tags),
                    )
                column = ColumnVolumeSpec("Accumulated Volume", fixed, cv_tag, factor)
        base_units: dict[str, str] = {}
        for unit, (tag, line) in self._base_units.items():
            if tag not in names:
                fail(
                    line, f"base unit {unit!r} uses unknown tag {tag!r}" + _did_you_mean(tag, names)
                )
            elif unit != "CV" and not _known_unit(ureg, unit):
                fail(line, f"base unit {unit!r} is not a unit pint knows")
            base_units[unit] = tag

        # Commands.
        for cmd in self._commands.values():
            if cmd.name in SYSTEM_TAG_NAMES or not cmd.name.strip():
                fail(cmd.line, f"{cmd.name!r} cannot be a command name")
            check = getattr(cmd.parser, "check_units", None)
            if check is not None:
                problem = check(ureg)
                if problem:
                    fail(cmd.line, f"command {cmd.name!r}: {problem}")

        # Process values.
        process_values: list[ProcessValueDescription] = []
        for pv, line in self._process_values:
            if pv.tag not in names:
                fail(
                    line,
                    f"process value names unknown tag {pv.tag!r}" + _did_you_mean(pv.tag, names),
                )
            if pv.command is not None and pv.command not in self._commands:
                fail(
                    line,
                    f"process value {pv.tag!r} runs unknown command {pv.command!r}"
                    + _did_you_mean(pv.command, self._commands),
                )
            for button in pv.choices:
                first = button.pcode.split(":", 1)[0].strip()
                if first and first not in self._commands and not _is_builtin(first):
                    fail(
                        line,
                        f"button {button.label!r} runs unknown command {first!r}"
                        + _did_you_mean(first, self._commands),
                    )
            process_values.append(pv)

        # Plot.
        subplots: list[SubPlot] = []
        for sub, line in self._subplots:
            for axis in sub.axes:
                for tag in axis.tags:
                    if tag not in names:
                        fail(
                            line,
                            f"plot axis {axis.label!r} names unknown tag {tag!r}"
                            + _did_you_mean(tag, names),
                        )
            for region in sub.color_regions:
                rspec = self._tags.get(region.tag)
                if rspec is None and region.tag not in names:
                    fail(
                        line,
                        f"colour region names unknown tag {region.tag!r}"
                        + _did_you_mean(region.tag, names),
                    )
                elif rspec is not None:
                    if not rspec.choices:
                        fail(line, f"colour region tag {region.tag!r} is not categorical")
                    for value in region.colors:
                        if value not in rspec.choices:
                            fail(
                                line,
                                f"colour region {region.tag!r}: {value!r} is not one of "
                                + ", ".join(rspec.choices),
                            )
            subplots.append(sub)
        x_choices = self._x_axis_choices or ["Run Time"]
        for tag in x_choices:
            if tag not in names:
                fail(
                    self._x_axis_line,
                    f"x axis choice names unknown tag {tag!r}" + _did_you_mean(tag, names),
                )
        for tag in self._annotations:
            if tag not in names:
                fail(None, f"annotation tag {tag!r} is unknown" + _did_you_mean(tag, names))

        if not 0 < self._scan_interval <= 10:
            fail(self._interval_line, "scan interval must be in (0, 10] seconds")
        if self._data_log_interval < self._scan_interval:
            fail(self._interval_line, "data log interval cannot be shorter than the scan interval")

        if problems:
            # The earliest line first: the author fixes the file top to bottom.
            problems.sort(key=lambda p: (p[0] is None, p[0] or 0))
            line, message = problems[0]
            raise UodError(message, filename=filename, line=line, more=len(problems) - 1)

        specs = [*system_tag_specs(), *self._tags.values()]
        uod = Uod(
            name=self._name,
            filename=filename,
            author_name=self._author_name,
            author_email=self._author_email,
            hardware_description="; ".join(d for _, d, _ in self._parts),
            hardware_factory=hardware_factory,
            register_tags=register_tags,
            tags=tuple(specs),
            commands=dict(self._commands),
            calculated=tuple(self._calculated),
            accumulators=tuple(accumulators),
            column_volume=column,
            process_values=tuple(process_values),
            plot=PlotConfiguration(
                subplots=subplots,
                x_axis_choices=x_choices,
                x_axis=x_choices[0],
                annotation_tags=self._annotations,
            ),
            base_units=base_units,
            unit_definitions=tuple(d for d, _ in self._units),
            required_roles=tuple(dict.fromkeys(self._roles)),
            data_log_interval=self._data_log_interval,
            scan_interval=self._scan_interval,
            unit_registry=ureg,
        )
        self._check_buttons(uod, filename)
        return uod

    def _check_buttons(self, uod: Uod, filename: str) -> None:
        """The P-code behind every process-value button and entry must pass the analyzer, so
        that an operator's click is never the first time it is checked."""
        from engine.context import UodContext
        from engine.lang.analyzer import analyze

        context = UodContext(uod)
        for pv, line in self._process_values:
            codes = [(f"button {b.label!r}", b.pcode) for b in pv.choices]
            spec = uod.commands.get(pv.command or "")
            if spec is not None:
                for unit in pv.units:
                    problem = context.validate_command(spec.name, f"1 {unit}")
                    if problem is not None and "unit" in problem:
                        raise UodError(
                            f"process value {pv.tag!r}: command {spec.name!r} does not accept "
                            f"unit {unit!r}",
                            filename=filename,
                            line=line,
                        )
            for what, code in codes:
                errors = [f for f in analyze(code, context, injected=True) if f.severity == "error"]
                if errors:
                    raise UodError(
                        f"process value {pv.tag!r} {what}: {errors[0].message}",
                        filename=filename,
                        line=line,
                    )

    def _register_tags(
        self, factory: HardwareFactory, fail: Callable[[int | None, str], None]
    ) -> tuple[str, ...]:
        """Tags the hardware reads or writes, found by building it (drivers connect only when
        started, so this touches no device)."""
        from engine.clock import FakeClock

        try:
            hw = factory(FakeClock().monotonic)
        except Exception as exc:
            fail(self._hardware_line, f"hardware: {describe(exc)}")
            return ()
        return tuple(hardware_tags(hw))


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


def _is_hardware(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("snapshot", "write", "write_safe_values", "drain_events"))


def _describe(hw: object) -> str:
    name = getattr(hw, "name", None)
    return str(name) if name else type(hw).__name__


def _model_name(model: object) -> str:
    return model.__name__ if isinstance(model, type) else type(model).__name__


def _pu(unit: str) -> str:
    return "percent" if unit == "%" else unit


def _known_unit(ureg: Registry, unit: str) -> bool:
    try:
        ureg.Unit(_pu(unit))
    except Exception:
        return False
    return True


def _is_builtin(name: str) -> bool:
    try:
        from engine.lang.instructions import BUILTINS
    except Exception:
        return name in {"Mark", "Info", "Warning", "Error", "Pause", "Hold", "Stop", "Notify"}
    return name in BUILTINS


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    from engine.lang.suggest import suggest

    best = suggest(word, list(candidates))
    return f" (did you mean {best!r}?)" if best else ""


def _accepts(function: Callable[..., Any], count: int) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def _check_function(
    function: Callable[..., Any], parser: ArgumentParser, what: str
) -> tuple[str | None, bool]:
    """(problem, takes_value): the function must take (cmd, value), or (cmd) when there is no
    argument, and a value annotation must admit what the parser produces."""
    no_argument = isinstance(parser, NoArgument)
    if _accepts(function, 2):
        takes_value = True
    elif no_argument and _accepts(function, 1):
        return None, False
    else:
        wanted = "(cmd)" if no_argument else "(cmd, value)"
        return f"{what}: function must take {wanted}", True
    try:
        hints = typing.get_type_hints(function)
        params = list(inspect.signature(function).parameters.values())
    except Exception:
        return None, takes_value
    if len(params) >= 2 and params[1].name in hints:
        annotation = hints[params[1].name]
        produced = parser.output_type
        if not _admits(annotation, produced):
            shown = getattr(annotation, "__name__", str(annotation))
            return (
                f"{what}: function takes {params[1].name}: {shown}, but its argument parser "
                f"produces {produced.__name__}",
                takes_value,
            )
    return None, takes_value


def _admits(annotation: Any, produced: type) -> bool:
    if annotation is Any or annotation is object:
        return True
    args = typing.get_args(annotation)
    if args and typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType):
        return any(_admits(a, produced) for a in args)
    if annotation is type(None):
        return produced is type(None)
    if isinstance(annotation, type):
        if produced is float and annotation is int:
            return False
        return issubclass(produced, annotation) or (annotation is float and produced is int)
    return True


def _validation_line(exc: Exception) -> str:
    return first_problem(exc).line() if isinstance(exc, ValidationError) else str(exc)


# Re-exported for UOD files.
_ = (Choice, Number)
