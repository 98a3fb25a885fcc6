"""The loaded, validated definition of a unit (what `create()` returns).

It is plain data plus the UOD's functions. Hardware is kept as a factory so that the engine can
hand the simulated hardware its own (possibly simulated) clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.alarms.spec import AlarmSpec
from engine.tags import TagSpec
from engine.uod.arguments import ArgumentParser
from protocol.models import (
    CommandDescription,
    PlotConfiguration,
    ProcessValueDescription,
    ScalarValue,
    UodDescription,
)

if TYPE_CHECKING:
    from engine.commands import CommandContext
    from engine.hw.base import Clock, Hardware

CommandFunction = Callable[..., Any]
HardwareFactory = Callable[["Clock"], "Hardware"]
CalculatedFunction = Callable[[Mapping[str, ScalarValue]], ScalarValue]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    run: CommandFunction
    parser: ArgumentParser
    description: str = ""
    group: str | None = None
    init: Callable[[CommandContext, Any], Any] | None = None
    finalize: Callable[[CommandContext], Any] | None = None
    takes_value: bool = True  # run(cmd, value) rather than run(cmd)
    line: int | None = None

    def describe(self) -> CommandDescription:
        return CommandDescription(
            name=self.name,
            description=self.description,
            argument=self.parser.describe(),
            group=self.group,
        )


@dataclass(frozen=True)
class CalculatedSpec:
    name: str
    function: CalculatedFunction


@dataclass(frozen=True)
class AccumulatorSpec:
    name: str
    source: str
    factor: float  # accumulator units per (source unit x second)
    block_tag: str | None = None  # the matching "Block ..." tag, reset when a block starts


@dataclass(frozen=True)
class ColumnVolumeSpec:
    """Accumulated CV = Accumulated Volume / column volume (a fixed volume or an entry tag)."""

    volume_tag: str
    column_volume: float | None
    column_volume_tag: str | None
    factor: float  # converts the volume tag's unit to the column volume's unit


@dataclass(frozen=True)
class Uod:
    name: str
    filename: str = ""
    author_name: str = ""
    author_email: str = ""
    hardware_description: str = ""
    hardware_factory: HardwareFactory | None = None
    simulation_factory: HardwareFactory | None = None  # the process model (engine/model_run.py)
    register_tags: tuple[str, ...] = ()
    tags: tuple[TagSpec, ...] = ()
    commands: Mapping[str, CommandSpec] = field(default_factory=dict)
    calculated: tuple[CalculatedSpec, ...] = ()
    accumulators: tuple[AccumulatorSpec, ...] = ()
    column_volume: ColumnVolumeSpec | None = None
    process_values: tuple[ProcessValueDescription, ...] = ()
    plot: PlotConfiguration = field(default_factory=PlotConfiguration)
    base_units: Mapping[str, str] = field(default_factory=dict)  # extra unit -> timeline tag
    unit_definitions: tuple[str, ...] = ()
    required_roles: tuple[str, ...] = ()
    view_roles: tuple[str, ...] = ()
    require_approved_methods: bool = False
    data_log_interval: float = 1.0
    scan_interval: float = 0.1
    alarms: tuple[AlarmSpec, ...] = ()
    # The registry the UOD was checked with (its units defined). The CLI hands it to the one
    # engine it creates, saving a second ~0.2 s registry build at start-up.
    unit_registry: Any = field(default=None, compare=False, repr=False)

    def tag(self, name: str) -> TagSpec | None:
        for spec in self.tags:
            if spec.name == name:
                return spec
        return None

    def describe(self) -> UodDescription:
        return UodDescription(
            name=self.name,
            author_name=self.author_name,
            author_email=self.author_email,
            hardware=self.hardware_description,
            filename=self.filename,
            tags=[t.describe() for t in self.tags],
            commands=[c.describe() for c in self.commands.values()],
            process_values=list(self.process_values),
            plot=self.plot,
            base_units=["s", "min", "h", *self.base_units],
            required_roles=list(self.required_roles),
            view_roles=list(self.view_roles),
            require_approved_methods=self.require_approved_methods,
            data_log_interval=self.data_log_interval,
            scan_interval=self.scan_interval,
            alarms=[alarm.describe() for alarm in self.alarms],
        )
