"""What every part of the interpreter shares: its state, the run-log bookkeeping and the seams.

The interpreter is one object assembled from one mixin per responsibility (run control, timing,
live editing, the instruction handlers, the scan); they all read and write the state set up here.
A part that needs another part's behaviour calls it through the abstract methods below, so that
each dependency between the modules is written down in one place and checked by mypy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.lang.analyzer import Finding
from engine.lang.api import CommandHandle, EngineContext, LineState, ScalarValue, SystemState
from engine.lang.conditions import Condition, ConditionProblem, TagInfo
from engine.lang.parser import Line, parse
from engine.lang.paths import Arm, Path, PathKind, Pending, Program, RunningBlock
from engine.lang.runlog import (
    Event,
    LogMessage,
    MethodStateChanged,
    RunLogChanged,
    RunLogLine,
    StateChanged,
)
from engine.lang.timelines import Clocks

if TYPE_CHECKING:
    from engine.lang.editing import MethodLine

MAX_INSTRUCTIONS_PER_SCAN = 1000
EPSILON = 1e-9
FIXED = frozenset({"Mark", "Macro", "Call macro", "Notify", "Block"})
ACTIVE = (SystemState.RUNNING, SystemState.PAUSED, SystemState.HOLDING)


@dataclass(eq=False, slots=True)
class Command:
    handle: CommandHandle
    log: RunLogLine
    progress: float | None = None


@dataclass(eq=False, slots=True)
class Timed:
    """A running `Pause: d` / `Hold: d`: resumes by itself at `until` (run time)."""

    log: RunLogLine
    state: SystemState
    until: float


@dataclass(eq=False, slots=True)
class Failure:
    """A method line that failed in this run, waiting for the operator to resume or skip it.

    `path` is the path standing on the line (it failed at once, so unpausing runs it again);
    None for a command that failed after it had started, whose path has moved on."""

    log: RunLogLine
    line_id: str
    path: Path | None
    action: Literal["retry", "skip"] | None = None


def summary(findings: Sequence[Finding], limit: int = 5) -> str:
    shown = "; ".join(str(f) for f in findings[:limit])
    more = len(findings) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


class InterpreterCore(ABC):
    def __init__(self, context: EngineContext, *, new_run_id: Callable[[], str]) -> None:
        self._ctx = context
        self._new_run_id = new_run_id
        self._events: list[Event] = []
        self._state = SystemState.STOPPED
        self._method_status = "OK"
        self._run_id = ""
        self._run_start = 0.0
        self._run_clock_start = 0.0
        self._now = 0.0
        self._clock_set = False  # the first time seen only sets the clock: no time elapsed
        self._tick_no = 0
        self._clocks = Clocks()
        self._amount_last: dict[str, float] = {}
        self._run_counter = 0
        self._mark = ""
        self._batch = ""
        self._next_log = 0
        self._next_line = 0
        self._version = 0
        self._lines: list[MethodLine] = []
        self._program = Program(parse(""), True)
        self._main: Path | None = None
        self._paths: list[Path] = []
        self._arms: list[Arm] = []
        self._blocks: list[RunningBlock] = []
        self._macros: dict[str, tuple[Program, str]] = {}
        self._macros_run: set[str] = set()
        self._commands: dict[str, Command] = {}
        self._timed: Timed | None = None
        self._paused_from = SystemState.RUNNING
        self._live: dict[str, object] = {}
        self._names: dict[str, str] = {}
        self._forced: set[str] = set()
        self._simulated: set[str] = set()
        self._started: set[str] = set()
        self._completed: set[str] = set()
        self._failed: set[str] = set()
        # Fix and resume (recovery.py): failures of this error pause by run-log id, the failed
        # attempt each method line id runs again, and commands to start again once Running.
        self._failures: dict[str, Failure] = {}
        self._retry_of: dict[str, str] = {}
        self._retries: list[Failure] = []
        self._state_dirty = False
        self._tags: TagInfo | None = None
        self._bases: dict[str, tuple[str, float]] = {}
        self._amount_tags: tuple[str, ...] | None = None
        self._conditions: dict[str, Condition | ConditionProblem] = {}
        self._durations: dict[str, float] = {}
        # The interpreter's own tags (api.INTERPRETER_TAGS), read by conditions; filled by
        # Interpreter, whose properties compute them.
        self._own: dict[str, Callable[[], ScalarValue]] = {}

    @property
    def base(self) -> str:
        """The main path's base unit: what `Base` shows and what injected code starts with."""
        return self._main.base if self._main is not None else "min"

    # -- run-log lines --------------------------------------------------------------------------

    def _new_log(
        self,
        line: Line | None,
        text: str,
        now: float,
        user: str | None,
        in_method: bool = False,
    ) -> RunLogLine:
        self._next_log += 1
        log_id = str(self._next_log)
        line_id = line.id if line is not None and in_method else None
        log = RunLogLine(log_id, line_id, text, now, user=user)
        self._names[log_id] = line.name if line is not None else text
        if line_id is not None:
            log.retry_of = self._retry_of.pop(line_id, None)
            self._started.add(line_id)
            self._completed.discard(line_id)
            self._state_dirty = True
        return log

    def _operator_line(self, text: str, now: float, user: str | None) -> None:
        log = self._new_log(None, text, now, user)
        self._finish(log, LineState.COMPLETED, now)

    def _emit(self, log: RunLogLine) -> None:
        # A finished line never changes again here, so only a running one needs a copy.
        line = log.snapshot() if log.state is LineState.RUNNING else log
        self._events.append(RunLogChanged(line))

    def _finish(self, log: RunLogLine, state: LineState, now: float) -> None:
        log.state = state
        log.end = now
        log.cancellable = log.forcible = False
        self._emit(log)

    def _complete(self, log: RunLogLine, now: float) -> None:
        forced = log.id in self._forced
        if forced:
            self._forced.discard(log.id)
        if log.progress is not None:
            log.progress = 1.0
        self._finish(log, LineState.FORCED if forced else LineState.COMPLETED, now)
        self._line_done(log)

    def _line_done(self, log: RunLogLine) -> None:
        if log.line_id is not None:
            self._completed.add(log.line_id)
            self._failed.discard(log.line_id)
            self._state_dirty = True

    def _running(self, log: RunLogLine, *, cancellable: bool, forcible: bool) -> None:
        log.cancellable = cancellable
        log.forcible = forcible
        self._emit(log)

    def _fail_log(
        self, log: RunLogLine, message: str, now: float, path: Path | None = None
    ) -> None:
        log.message = message
        self._finish(log, LineState.FAILED, now)
        if log.line_id is not None:
            self._failed.add(log.line_id)
            self._state_dirty = True
            if self._state in ACTIVE:
                self._failures[log.id] = Failure(log, log.line_id, path)
                if path is not None:
                    self._retry_of[log.line_id] = log.id
        text = f"'{log.text}' failed: {message}"
        if self._state in ACTIVE:
            self.error_pause(now, text)
        else:
            self._events.append(LogMessage("error", text))

    def _fail(self, path: Path, line: Line, log: RunLogLine, message: str, now: float) -> None:
        """A line that failed at once: the path stays on it so that unpausing retries it."""
        if path.kind is PathKind.INJECTED or self._state not in ACTIVE:
            path.done = True
        else:
            frame = path.frames[-1]
            for i in range(frame.index - 1, -1, -1):
                if frame.body[i] is line:
                    frame.index = i
                    previous = [x for x in frame.body[:i] if x.is_instruction]
                    frame.last_id = previous[-1].id if previous else None
                    break
        self._fail_log(log, message, now, None if path.done else path)

    def _clear_failures(self) -> None:
        self._failures.clear()
        self._retry_of.clear()
        self._retries.clear()

    def _disarm(self, arm: Arm, state: LineState, now: float) -> None:
        if arm in self._arms:
            self._arms.remove(arm)
        self._live.pop(arm.log.id, None)
        self._finish(arm.log, state, now)
        self._line_done(arm.log)

    def _lock_free(self, path: Path) -> bool:
        if not self._blocks:
            return True
        chain = path.chain()
        return all(any(b is c for c in chain) for b in self._blocks)

    def _set_state(self, new: SystemState) -> None:
        if new is not self._state:
            old, self._state = self._state, new
            self._events.append(StateChanged(old, new))

    def _flush_state(self) -> None:
        if self._state_dirty:
            self._state_dirty = False
            self._events.append(MethodStateChanged())

    # -- seams: implemented by run_control.py -----------------------------------------------------

    @abstractmethod
    def error_pause(self, now: float, message: str) -> None: ...

    @abstractmethod
    def _enter_pause(self, now: float) -> None: ...

    @abstractmethod
    def _leave(
        self, now: float, state: SystemState, how: LineState = LineState.COMPLETED
    ) -> None: ...

    @abstractmethod
    def _end_run(
        self, now: float, reason: str, final: SystemState, user: str | None = None
    ) -> None: ...

    @abstractmethod
    def _restart(self, now: float, user: str | None = None) -> None: ...

    # -- seams: implemented by recovery.py ---------------------------------------------------------

    @abstractmethod
    def _after_pause(self, now: float) -> None: ...

    # -- seams: implemented by scan.py ------------------------------------------------------------

    @abstractmethod
    def _run_paths(self, now: float) -> None: ...

    @abstractmethod
    def _run_path(self, path: Path, now: float) -> None: ...

    @abstractmethod
    def _sweep(self) -> None: ...

    # -- seams: implemented by handlers.py --------------------------------------------------------

    @abstractmethod
    def _execute(self, path: Path, line: Line, log: RunLogLine, now: float) -> None: ...

    @abstractmethod
    def _enter_block(self, path: Path, line: Line, log: RunLogLine, now: float) -> None: ...

    # -- seams: implemented by timing.py ----------------------------------------------------------

    @abstractmethod
    def _advance(self, now: float) -> bool: ...

    @abstractmethod
    def _note_time(self, now: float) -> None: ...

    @abstractmethod
    def _read_amounts(self, flowing: bool) -> None: ...

    @abstractmethod
    def _threshold(self, path: Path, line: Line, log: RunLogLine, now: float) -> bool: ...

    @abstractmethod
    def _ready(self, path: Path, pending: Pending) -> bool: ...

    @abstractmethod
    def _update_progress(self) -> None: ...

    @abstractmethod
    def _duration(self, text: str) -> float: ...

    # -- seams: implemented by editing.py ---------------------------------------------------------

    @abstractmethod
    def analyze(self) -> list[Finding]: ...
