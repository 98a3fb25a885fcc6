"""What a UOD file's builder calls declared, each with its line, before anything is cross-checked.

The builder only records; the checks (engine/uod/checks.py) read this record and the assembly
(engine/uod/assemble.py) turns it into a `Uod`. Keeping the record plain lets each check be a
small function of it, tested and reasoned about on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.alarms.spec import AlarmSpec
from engine.tags import TagSpec
from engine.uod.definition import CalculatedSpec, CommandSpec, HardwareFactory
from protocol.models import ProcessValueDescription, SubPlot

Problem = tuple[int | None, str]
"""(line of the UOD file or None, one-line message)."""


@dataclass(frozen=True)
class HardwarePart:
    factory: HardwareFactory
    description: str
    line: int | None
    simulated: bool = False  # a process model (simulated()), usable for simulation as it is


@dataclass(frozen=True)
class AccumulatorDraft:
    source: str
    block_tag: str | None
    line: int | None


@dataclass(frozen=True)
class ColumnDraft:
    volume: float | None  # a fixed column volume, in `unit`
    tag: str | None  # or the entry tag holding it
    unit: str
    line: int | None


@dataclass
class Draft:
    name: str
    line: int | None
    author_name: str = ""
    author_email: str = ""
    parts: list[HardwarePart] = field(default_factory=list)
    simulation: HardwarePart | None = None  # uod.simulation(model)
    tags: dict[str, TagSpec] = field(default_factory=dict)
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    calculated: list[CalculatedSpec] = field(default_factory=list)
    accumulators: dict[str, AccumulatorDraft] = field(default_factory=dict)
    column: ColumnDraft | None = None
    process_values: list[tuple[ProcessValueDescription, int | None]] = field(default_factory=list)
    subplots: list[tuple[SubPlot, int | None]] = field(default_factory=list)
    x_axis_choices: list[str] | None = None
    x_axis_line: int | None = None
    annotations: list[str] = field(default_factory=lambda: ["Mark"])
    base_units: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    units: list[tuple[str, int | None]] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    view_roles: list[str] = field(default_factory=list)
    require_approved: bool = False
    data_log_interval: float = 1.0
    scan_interval: float = 0.1
    interval_line: int | None = None
    alarms: list[AlarmSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # found while declaring

    @property
    def hardware_line(self) -> int | None:
        return self.parts[0].line if self.parts else None
