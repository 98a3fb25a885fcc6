"""Run-log lines and the events the interpreter hands to the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from engine.lang.api import LineState, ScalarValue, SystemState

# What engine.lang re-exports from here (one list, not a copy of these imports there).
__all__ = [
    "Event",
    "LogMessage",
    "MarkSet",
    "MethodChanged",
    "MethodStateChanged",
    "Notification",
    "RunLogChanged",
    "RunLogLine",
    "RunStarted",
    "RunStopped",
    "StateChanged",
]


@dataclass(slots=True)
class RunLogLine:
    """One instruction that ran (or an operator command). `user` None means the method.

    `start_values` / `end_values` belong to the engine: it fills them from the process values when
    it sees the line start and end. `message` says why a line failed. `retry_of` is the run-log id
    of the failed attempt this line runs again (fix and resume).
    """

    id: str
    line_id: str | None
    text: str
    start: float
    end: float | None = None
    progress: float | None = None
    state: LineState = LineState.RUNNING
    user: str | None = None
    start_values: dict[str, ScalarValue] = field(default_factory=dict)
    end_values: dict[str, ScalarValue] = field(default_factory=dict)
    cancellable: bool = False
    forcible: bool = False
    message: str | None = None
    retry_of: str | None = None

    def snapshot(self) -> RunLogLine:
        """A copy for an event, so later changes to the live line do not rewrite history."""
        return RunLogLine(
            self.id,
            self.line_id,
            self.text,
            self.start,
            self.end,
            self.progress,
            self.state,
            self.user,
            dict(self.start_values),
            dict(self.end_values),
            self.cancellable,
            self.forcible,
            self.message,
            self.retry_of,
        )


@dataclass(frozen=True, slots=True)
class RunLogChanged:
    line: RunLogLine


@dataclass(frozen=True, slots=True)
class MarkSet:
    text: str


@dataclass(frozen=True, slots=True)
class LogMessage:
    level: Literal["info", "warning", "error"]
    text: str


@dataclass(frozen=True, slots=True)
class Notification:
    text: str


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: SystemState
    new: SystemState


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class RunStopped:
    run_id: str
    reason: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class MethodChanged:
    version: int
    user: str | None = None


@dataclass(frozen=True, slots=True)
class MethodStateChanged:
    pass


Event = (
    RunLogChanged
    | MarkSet
    | LogMessage
    | Notification
    | StateChanged
    | RunStarted
    | RunStopped
    | MethodChanged
    | MethodStateChanged
)
