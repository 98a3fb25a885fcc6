"""Paths of execution: the main path, each fired Watch/Alarm body and each injected code.

A path is a stack of frames (the body it walks, Blocks it entered, macros it called). Frames name
their body by the id of the line that owns it and remember the id of the last line they began,
so a live edit can rebuild them on the new tree without losing the position.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from engine.lang.conditions import Condition
from engine.lang.parser import Line, ParsedMethod
from engine.lang.runlog import RunLogLine
from engine.lang.timelines import Timeline


class FrameKind(Enum):
    ROOT = "root"  # the method's top level: waits at its end (a method never ends on its own)
    BODY = "body"  # a Watch/Alarm body or injected code: the path ends at its end
    BLOCK = "block"  # a Block body: waits at its end until the block is ended
    MACRO = "macro"  # a macro body: returns to the caller at its end


class PathKind(Enum):
    MAIN = "main"
    WATCH = "watch"
    ALARM = "alarm"
    INJECTED = "injected"


@dataclass(eq=False, slots=True)
class Program:
    """The lines a path walks; the method's Program gets a new tree on every accepted edit."""

    tree: ParsedMethod
    is_method: bool


@dataclass(eq=False, slots=True)
class RunningBlock:
    name: str
    line_id: str
    timeline: Timeline
    path: Path
    log: RunLogLine


@dataclass(eq=False, slots=True)
class Frame:
    container_id: str | None
    body: list[Line]
    kind: FrameKind
    index: int = 0
    last_id: str | None = None
    block: RunningBlock | None = None
    macro: str | None = None


class PendingKind(Enum):
    THRESHOLD = "threshold"
    WAIT = "wait"
    LOCK = "lock"


@dataclass(eq=False, slots=True)
class Pending:
    """What holds a path: a threshold not reached, a Wait, or a Block waiting for the lock."""

    kind: PendingKind
    line: Line
    log: RunLogLine
    timeline_kind: str = ""
    target: float = 0.0
    start: float = 0.0
    forced: bool = False


@dataclass(eq=False, slots=True)
class Path:
    kind: PathKind
    program: Program
    frames: list[Frame]
    scope: Timeline
    base: str
    user: str | None
    ancestors: tuple[RunningBlock, ...] = ()
    arm: Arm | None = None
    pending: Pending | None = None
    done: bool = False

    def timeline(self) -> Timeline:
        for frame in reversed(self.frames):
            if frame.block is not None:
                return frame.block.timeline
        return self.scope

    def chain(self) -> tuple[RunningBlock, ...]:
        """The blocks this path runs inside: those it was started in, then those it entered."""
        own = tuple(f.block for f in self.frames if f.block is not None)
        return self.ancestors + own if own else self.ancestors

    def macros(self) -> list[str]:
        return [f.macro for f in self.frames if f.macro is not None]


@dataclass(eq=False, slots=True)
class Arm:
    """An armed Watch or Alarm."""

    is_alarm: bool
    line: Line
    program: Program
    condition: Condition
    log: RunLogLine
    block: RunningBlock | None
    ancestors: tuple[RunningBlock, ...]
    base: str
    user: str | None
    active: Path | None = None
    forced: bool = False
    last_tick: int = -1
    fired: int = 0
