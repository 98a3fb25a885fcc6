"""The P-code interpreter: a sans-I/O state machine advanced by the engine's scan.

The engine calls `tick(now)` once per scan and the run-control methods when an operator acts; the
interpreter reads tags and starts commands through its `EngineContext` and reports everything else
as events (`drain_events`). It never reads a clock: every entry point takes `now` (seconds).

`Interpreter` is assembled from one part per responsibility, each in its own module over the
shared state of core.py: run_control.py (operator commands, the run-control state table, injected
code, cancel/force), recovery.py (fix and resume after a failed line), timing.py (clocks, thresholds, Waits), editing.py (loading and live editing),
handlers.py (the table from instruction to handler) and scan.py (one tick, walking the paths).
This module is what the engine imports; it adds the read-only state the engine copies into tags.

Choices the language reference leaves open, made here:
- Injected code runs in every state (an operator's manual commands, also while Paused or Holding,
  which is also how an injected `Unpause` works); its thresholds and Waits still stand still.
  Watches and Alarms are checked while Running, and while Stopped for those injected then
  (manual operation); never while Paused or Holding.
- A line counts as started once its path reaches it, also while it waits for its threshold; it then
  has a run-log line that can be forced or cancelled.
- When a line fails at once (its command raises, an undefined macro), the run error-pauses and the
  path stays on that line: after a fix (section 9) or not, unpausing runs it again. A command that
  fails later only error-pauses; its path has moved on. Either way the operator may fix the line
  and choose Resume from the failed line or Skip it (recovery.py); a command that failed mid-way
  runs again only on Resume.
- Ending a block cancels the Watches and Alarms declared in it that have not fired; a body that is
  already running finishes (it runs on its own scope timeline, section 12.9).
- Cancelling or forcing a timed Pause or Hold resumes at once.
- While a run is active an edit that leaves analyzer errors in the method is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.lang.api import EngineContext, SystemState
from engine.lang.editing import EditResult, LiveEditing, MethodEditError
from engine.lang.handlers import Handlers
from engine.lang.paths import FrameKind, Path
from engine.lang.recovery import Recovery
from engine.lang.run_control import InjectionError, LineActionError, RunControl, RunControlError
from engine.lang.runlog import Event
from engine.lang.scan import Scan
from engine.lang.timing import Timing

__all__ = [
    "EditResult",
    "InjectionError",
    "Interpreter",
    "LineActionError",
    "MethodEditError",
    "MethodState",
    "RunControlError",
]


@dataclass(frozen=True, slots=True)
class MethodState:
    started: frozenset[str]
    completed: frozenset[str]
    failed: frozenset[str]


def _waits_at_end(path: Path) -> bool:
    """At the end of the method's top level or of a block, with nothing pending: only a live
    edit (more lines) or an End block from elsewhere moves such a path on."""
    top = path.frames[-1] if path.frames else None
    return (
        path.pending is None
        and top is not None
        and top.kind in (FrameKind.ROOT, FrameKind.BLOCK)
        and top.index >= len(top.body)
    )


class Interpreter(RunControl, Recovery, Scan, Handlers, Timing, LiveEditing):
    def __init__(self, context: EngineContext, *, new_run_id: Callable[[], str]) -> None:
        super().__init__(context, new_run_id=new_run_id)
        self._own.update(
            {
                "System State": lambda: self._state.value,
                "Method Status": lambda: self._method_status,
                "Run Id": lambda: self._run_id,
                "Run Time": lambda: self.run_time,
                "Process Time": lambda: self.process_time,
                "Block": lambda: self.block,
                "Block Time": lambda: self.block_time,
                "Scope Time": lambda: self.scope_time,
                "Base": lambda: self.base,
                "Run Counter": lambda: self._run_counter,
                "Mark": lambda: self._mark,
                "Batch Name": lambda: self._batch,
            }
        )

    # -- read-only state the engine copies into system tags ---------------------------------

    @property
    def state(self) -> SystemState:
        return self._state

    @property
    def method_status(self) -> str:
        return self._method_status

    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def block(self) -> str:
        return self._blocks[-1].name if self._blocks else ""

    @property
    def run_counter(self) -> int:
        return self._run_counter

    @property
    def mark(self) -> str:
        return self._mark

    @property
    def batch_name(self) -> str:
        return self._batch

    @property
    def method_state(self) -> MethodState:
        return MethodState(
            frozenset(self._started), frozenset(self._completed), frozenset(self._failed)
        )

    @property
    def method_complete(self) -> bool:
        """Running with nothing left that could run another line: every path (the method,
        injected code, watch bodies) has ended, no Watch or Alarm is armed, no command is
        running and no timed pause or hold waits. The run stays Running until a Stop; a
        simulation ends here, as nothing in the method can change any more."""
        return (
            self._state is SystemState.RUNNING
            and not self._arms
            and not self._commands
            and self._timed is None
            and all(p.done or _waits_at_end(p) for p in self._paths)
        )

    @property
    def defined_macros(self) -> list[str]:
        return sorted(self._macros)

    def drain_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events
