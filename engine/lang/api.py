"""The contract between the P-code interpreter and the engine that hosts it.

The interpreter never touches hardware, tags or a clock itself: it reads and writes through these
small interfaces so that the same code runs in the engine, in `setpoint-engine check` (analysis
without hardware) and in tests with a fake context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

# The wire enums are the interpreter's own (run-log line states: pcode.md section 7): one
# definition, so the engine hands the interpreter's states to protocol messages unconverted.
from protocol.models import LineState as LineState
from protocol.models import SystemState as SystemState

if TYPE_CHECKING:
    from engine.lang.units import Registry

ScalarValue = float | int | str | bool | None


class CommandHandle(Protocol):
    """A UOD command handed to the engine; the engine updates it every scan, we poll it."""

    state: LineState
    progress: float | None
    error: str | None


class AnalyzerContext(Protocol):
    """What static analysis needs to know about a unit: read-only, no hardware."""

    @property
    def ureg(self) -> Registry: ...

    def tag_names(self) -> Sequence[str]: ...

    def tag_unit(self, name: str) -> str | None: ...

    def tag_choices(self, name: str) -> Sequence[str] | None: ...

    def command_names(self) -> Sequence[str]: ...

    def validate_command(self, name: str, argument: str | None) -> str | None: ...

    def base_units(self) -> Mapping[str, str]: ...


class EngineContext(AnalyzerContext, Protocol):
    """The live unit: tag values, command execution and simulation."""

    def tag_value(self, name: str) -> ScalarValue: ...

    def start_command(self, name: str, argument: str | None, run_log_id: str) -> CommandHandle: ...

    def cancel_command(self, handle: CommandHandle) -> None: ...

    def simulate(self, tag: str, value: ScalarValue, unit: str | None) -> None: ...

    def simulate_off(self, tag: str) -> None: ...


# System tags whose values the interpreter owns; conditions read them from the interpreter so that
# a change made earlier in the same scan (e.g. `Increment run counter`) is seen at once.
INTERPRETER_TAGS: Mapping[str, str | None] = MappingProxyType(
    {
        "System State": None,
        "Method Status": None,
        "Run Id": None,
        "Run Time": "s",
        "Process Time": "s",
        "Block": None,
        "Block Time": "s",
        "Scope Time": "s",
        "Base": None,
        "Run Counter": None,
        "Mark": None,
        "Batch Name": None,
    }
)

INTERPRETER_TAG_CHOICES: Mapping[str, Sequence[str]] = MappingProxyType(
    {
        "System State": tuple(s.value for s in SystemState),
        "Method Status": ("OK", "Error"),
    }
)
