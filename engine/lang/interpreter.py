"""The P-code interpreter: a sans-I/O state machine advanced by the engine's scan.

The engine calls `tick(now)` once per scan and the run-control methods when an operator acts; the
interpreter reads tags and starts commands through its `EngineContext` and reports everything else
as events (`drain_events`). It never reads a clock: every entry point takes `now` (seconds).

Run control (operator commands; any other combination raises `RunControlError`):

| state \\ command | start   | stop    | pause        | unpause               | hold    | unhold  | restart |
|------------------|---------|---------|--------------|-----------------------|---------|---------|---------|
| Stopped          | Running | error   | error        | error                 | error   | error   | error   |
| Running          | error   | Stopped | Paused       | error                 | Holding | error   | Running |
| Paused           | error   | Stopped | error        | Running (or Holding*) | error   | error   | Running |
| Holding          | error   | Stopped | Paused       | error                 | error   | Running | Running |

\\* a pause entered from Holding returns to Holding. `start` also refuses a method with analyzer
errors. `error_pause` (a failed line or hardware) is accepted in every state: Running and Holding
become Paused, and Method Status becomes Error until the next unpause or start.

Choices the language reference leaves open, made here:
- Injected code runs in every state (an operator's manual commands, also while Paused or Holding,
  which is also how an injected `Unpause` works); its thresholds and Waits still stand still.
  Watches and Alarms are checked while Running, and while Stopped for those injected then
  (manual operation); never while Paused or Holding.
- A line counts as started once its path reaches it, also while it waits for its threshold; it then
  has a run-log line that can be forced or cancelled.
- When a line fails at once (its command raises, an undefined macro), the run error-pauses and the
  path stays on that line: after a fix (section 9) or not, unpausing runs it again. A command that
  fails later only error-pauses; its path has moved on.
- Ending a block cancels the Watches and Alarms declared in it that have not fired; a body that is
  already running finishes (it runs on its own scope timeline, section 12.9).
- Cancelling or forcing a timed Pause or Hold resumes at once.
- While a run is active an edit that leaves analyzer errors in the method is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from engine.lang.analyzer import Finding, analyze, analyze_parsed, errors
from engine.lang.api import CommandHandle, EngineContext, LineState, ScalarValue, SystemState
from engine.lang.conditions import Condition, ConditionProblem, TagInfo, check_condition, tag_info
from engine.lang.editing import Method, MethodLine, check_live_edit, match_ids
from engine.lang.instructions import (
    BUILTINS,
    TIME_BASES,
    ArgumentError,
    check_base,
    parse_duration,
    parse_run_counter,
    parse_simulate,
    parse_simulate_off,
)
from engine.lang.parser import Line, ParsedMethod, parse, split_lines
from engine.lang.paths import (
    Arm,
    Frame,
    FrameKind,
    Path,
    PathKind,
    Pending,
    PendingKind,
    Program,
    RunningBlock,
)
from engine.lang.runlog import (
    Event,
    LogMessage,
    MarkSet,
    MethodChanged,
    MethodStateChanged,
    Notification,
    RunLogChanged,
    RunLogLine,
    RunStarted,
    RunStopped,
    StateChanged,
)
from engine.lang.timelines import TIME, Clocks
from engine.lang.units import factor

MAX_INSTRUCTIONS_PER_SCAN = 1000
EPSILON = 1e-9
FIXED = frozenset({"Mark", "Macro", "Call macro", "Notify", "Block"})
ACTIVE = (SystemState.RUNNING, SystemState.PAUSED, SystemState.HOLDING)


class RunControlError(Exception):
    """An operator command that is not valid now; the message says why."""


class MethodEditError(Exception):
    """A refused edit; the method is unchanged."""


class InjectionError(ValueError):
    """Injected code with analyzer errors; nothing of it ran."""

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.findings = list(findings)


class LineActionError(Exception):
    """A cancel or force the line does not allow."""


@dataclass(frozen=True, slots=True)
class EditResult:
    version: int
    changed: bool
    findings: list[Finding]


@dataclass(frozen=True, slots=True)
class MethodState:
    started: frozenset[str]
    completed: frozenset[str]
    failed: frozenset[str]


@dataclass(eq=False, slots=True)
class _Command:
    handle: CommandHandle
    log: RunLogLine
    progress: float | None = None


@dataclass(eq=False, slots=True)
class _Timed:
    """A running `Pause: d` / `Hold: d`: resumes by itself at `until` (run time)."""

    log: RunLogLine
    state: SystemState
    until: float


def _summary(findings: Sequence[Finding], limit: int = 5) -> str:
    shown = "; ".join(str(f) for f in findings[:limit])
    more = len(findings) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


class Interpreter:
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
        self._commands: dict[str, _Command] = {}
        self._timed: _Timed | None = None
        self._paused_from = SystemState.RUNNING
        self._live: dict[str, object] = {}
        self._names: dict[str, str] = {}
        self._forced: set[str] = set()
        self._simulated: set[str] = set()
        self._started: set[str] = set()
        self._completed: set[str] = set()
        self._failed: set[str] = set()
        self._state_dirty = False
        self._tags: TagInfo | None = None
        self._bases: dict[str, tuple[str, float]] = {}
        self._amount_tags: tuple[str, ...] | None = None
        self._conditions: dict[str, Condition | ConditionProblem] = {}
        self._durations: dict[str, float] = {}
        self._own: dict[str, Callable[[], ScalarValue]] = {
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
    def run_time(self) -> float:
        return self._now - self._run_start if self._state in ACTIVE else 0.0

    @property
    def process_time(self) -> float:
        if self._state not in ACTIVE:
            return 0.0
        return self._clocks.time - self._run_clock_start

    @property
    def block(self) -> str:
        return self._blocks[-1].name if self._blocks else ""

    @property
    def block_time(self) -> float:
        if self._blocks:
            return self._blocks[-1].timeline.position(self._clocks, TIME)
        return self.process_time

    @property
    def scope_time(self) -> float:
        return self.process_time

    @property
    def base(self) -> str:
        return self._main.base if self._main is not None else "min"

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
    def method(self) -> Method:
        return Method(self._version, list(self._lines))

    @property
    def method_state(self) -> MethodState:
        return MethodState(
            frozenset(self._started), frozenset(self._completed), frozenset(self._failed)
        )

    @property
    def defined_macros(self) -> list[str]:
        return sorted(self._macros)

    def block_amount(self, unit: str) -> float:
        """The innermost block's timeline (the run's when no block runs) in a base unit, for the
        engine's `Block Volume` / `Block CV` tags."""
        kind, scale = self._resolve_base(unit)
        if self._blocks:
            timeline = self._blocks[-1].timeline
        elif self._main is not None:
            timeline = self._main.scope
        else:
            return 0.0
        return timeline.position(self._clocks, kind) / scale

    def drain_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    # -- the method ---------------------------------------------------------------------------

    def _new_line_id(self) -> str:
        self._next_line += 1
        return f"L{self._next_line}"

    def analyze(self) -> list[Finding]:
        return analyze_parsed(self._program.tree, self._ctx)

    def set_method(
        self,
        text: str,
        *,
        user: str | None = None,
        line_ids: Sequence[str | None] | None = None,
    ) -> EditResult:
        """Load or live-edit the method (section 9); raises `MethodEditError` when refused."""
        texts = split_lines(text)
        if line_ids is not None:
            if len(line_ids) != len(texts):
                raise MethodEditError(
                    f"{len(line_ids)} line ids for {len(texts)} lines; give one id per line"
                )
            ids = [i if i is not None else self._new_line_id() for i in line_ids]
            if len(set(ids)) != len(ids):
                raise MethodEditError("Line ids must be unique")
        else:
            ids = match_ids(self._lines, texts, self._new_line_id)
        new_lines = [MethodLine(i, t) for i, t in zip(ids, texts, strict=True)]
        tree = parse(text, ids)
        findings = analyze_parsed(tree, self._ctx)
        if new_lines == self._lines:
            return EditResult(self._version, False, findings)
        if self._state in ACTIVE:
            found = errors(findings)
            if found:
                raise MethodEditError(f"The edited method has errors: {_summary(found)}")
            touched = self._started | self._completed | self._failed
            refusal = check_live_edit(
                self._program.tree, tree, touched, set(self._failed), self._macros_run
            )
            if refusal is not None:
                raise MethodEditError(refusal)
        self._program.tree = tree
        self._lines = new_lines
        self._version += 1
        self._remap(tree)
        self._events.append(MethodChanged(self._version, user))
        return EditResult(self._version, True, findings)

    def _remap(self, tree: ParsedMethod) -> None:
        for path in self._paths:
            if path.program is not self._program:
                continue
            for frame in path.frames:
                frame.body = tree.children(frame.container_id)
                if frame.last_id is None:
                    frame.index = 0
                else:
                    frame.index = len(frame.body)
                    for i, line in enumerate(frame.body):
                        if line.id == frame.last_id:
                            frame.index = i + 1
                            break
            if path.pending is not None:
                path.pending.line = tree.by_id.get(path.pending.line.id, path.pending.line)
        for arm in self._arms:
            if arm.program is self._program:
                arm.line = tree.by_id.get(arm.line.id, arm.line)

    # -- run control ----------------------------------------------------------------------------

    def _operator_line(self, text: str, now: float, user: str | None) -> None:
        log = self._new_log(None, text, now, user)
        self._finish(log, LineState.COMPLETED, now)

    def start(self, now: float, user: str | None = None) -> None:
        if self._state is not SystemState.STOPPED:
            raise RunControlError(f"Cannot start: the unit is {self._state.value}, not Stopped")
        found = errors(self.analyze())
        if found:
            raise RunControlError(f"Cannot start: the method has errors: {_summary(found)}")
        self._note_time(now)
        self._begin_run(now, SystemState.STOPPED, user)
        self._operator_line("Start", now, user)
        self._run_paths(now)
        self._flush_state()

    def stop(self, now: float, user: str | None = None) -> None:
        if self._state not in ACTIVE:
            raise RunControlError("Cannot stop: no run is active")
        self._operator_line("Stop", now, user)
        self._end_run(now, "Stop", SystemState.STOPPED, user)
        self._flush_state()

    def restart(self, now: float, user: str | None = None) -> None:
        if self._state not in ACTIVE:
            raise RunControlError("Cannot restart: no run is active")
        self._operator_line("Restart", now, user)
        self._restart(now, user)
        self._flush_state()

    def pause(self, now: float, user: str | None = None) -> None:
        if self._state not in (SystemState.RUNNING, SystemState.HOLDING):
            raise RunControlError(f"Cannot pause: the unit is {self._state.value}")
        self._operator_line("Pause", now, user)
        self._enter_pause(now)

    def unpause(self, now: float, user: str | None = None) -> None:
        if self._state is not SystemState.PAUSED:
            raise RunControlError(f"Cannot unpause: the unit is {self._state.value}, not Paused")
        self._operator_line("Unpause", now, user)
        self._leave(now, SystemState.PAUSED)

    def hold(self, now: float, user: str | None = None) -> None:
        if self._state is not SystemState.RUNNING:
            raise RunControlError(f"Cannot hold: the unit is {self._state.value}, not Running")
        self._operator_line("Hold", now, user)
        self._set_state(SystemState.HOLDING)

    def unhold(self, now: float, user: str | None = None) -> None:
        if self._state is not SystemState.HOLDING:
            raise RunControlError(f"Cannot unhold: the unit is {self._state.value}, not Holding")
        self._operator_line("Unhold", now, user)
        self._leave(now, SystemState.HOLDING)

    def error_pause(self, now: float, message: str) -> None:
        """A command or the hardware failed: Paused with safe outputs, Method Status Error."""
        self._events.append(LogMessage("error", message))
        if self._state not in ACTIVE:
            return
        self._method_status = "Error"
        timed = self._timed
        if timed is not None and timed.state is SystemState.PAUSED:
            self._timed = None
            self._live.pop(timed.log.id, None)
            self._finish(timed.log, LineState.CANCELLED, now)
        if self._state is not SystemState.PAUSED:
            self._enter_pause(now)

    def _enter_pause(self, now: float) -> None:
        self._paused_from = (
            SystemState.HOLDING if self._state is SystemState.HOLDING else SystemState.RUNNING
        )
        self._set_state(SystemState.PAUSED)

    def _leave(self, now: float, state: SystemState, how: LineState = LineState.COMPLETED) -> None:
        """Leaves Paused or Holding; a timed Pause/Hold line ends with it."""
        timed = self._timed
        if timed is not None and timed.state is state:
            self._timed = None
            self._live.pop(timed.log.id, None)
            self._finish(timed.log, how, now)
        if state is SystemState.PAUSED:
            self._method_status = "OK"
            self._set_state(self._paused_from)
            self._paused_from = SystemState.RUNNING
        else:
            self._set_state(SystemState.RUNNING)

    def _note_time(self, now: float) -> None:
        """An operator action between scans: later scans measure time from here."""
        if not self._clock_set:
            self._clock_set = True
            self._now = now
        self._now = max(self._now, now)

    def _set_state(self, new: SystemState) -> None:
        if new is not self._state:
            old, self._state = self._state, new
            self._events.append(StateChanged(old, new))

    def _begin_run(self, now: float, old: SystemState, user: str | None = None) -> None:
        self._run_id = self._new_run_id()
        self._run_start = now
        self._run_clock_start = self._clocks.time
        self._method_status = "OK"
        self._mark = ""
        self._paused_from = SystemState.RUNNING
        self._names.clear()
        self._forced.clear()
        self._started.clear()
        self._completed.clear()
        self._failed.clear()
        self._macros.clear()
        self._macros_run.clear()
        self._state_dirty = True
        self._tags = None
        self._conditions.clear()
        self._durations.clear()
        self._bases.clear()
        self._amount_tags = None
        self._read_amounts(False)
        main = Path(
            PathKind.MAIN,
            self._program,
            [Frame(None, self._program.tree.roots, FrameKind.ROOT)],
            self._clocks.snapshot(),
            "min",
            None,
        )
        self._main = main
        self._paths.append(main)
        if old is SystemState.RESTARTING:
            self._events.append(RunStarted(self._run_id, user))
            self._set_state(SystemState.RUNNING)
        else:
            self._set_state(SystemState.RUNNING)
            self._events.append(RunStarted(self._run_id, user))

    def _end_run(
        self, now: float, reason: str, final: SystemState, user: str | None = None
    ) -> None:
        for log_id, command in list(self._commands.items()):
            try:
                self._ctx.cancel_command(command.handle)
            except Exception as exc:
                self._events.append(LogMessage("error", f"Cancelling '{command.log.text}': {exc}"))
            del self._commands[log_id]
            self._finish(command.log, LineState.CANCELLED, now)
        for path in self._paths:
            path.done = True
            if path.pending is not None:
                self._finish(path.pending.log, LineState.CANCELLED, now)
                path.pending = None
        for arm in self._arms:
            self._finish(arm.log, LineState.CANCELLED, now)
        for block in reversed(self._blocks):
            self._finish(block.log, LineState.CANCELLED, now)
        if self._timed is not None:
            self._finish(self._timed.log, LineState.CANCELLED, now)
            self._timed = None
        for tag in sorted(self._simulated):
            self._ctx.simulate_off(tag)
        self._simulated.clear()
        self._paths = []
        self._arms = []
        self._blocks = []
        self._live.clear()
        self._main = None
        run_id, self._run_id = self._run_id, ""
        self._set_state(final)
        self._events.append(RunStopped(run_id, reason, user))

    def _restart(self, now: float, user: str | None = None) -> None:
        self._set_state(SystemState.RESTARTING)
        self._end_run(now, "Restart", SystemState.RESTARTING, user)
        self._begin_run(now, SystemState.RESTARTING, user)

    # -- operator actions on lines ---------------------------------------------------------------

    def inject(self, text: str, now: float, user: str | None = None) -> None:
        """Run operator code as its own path (section 8); refused with findings if it has errors."""
        findings = analyze(text, self._ctx, injected=True, known_macros=self._macros)
        found = errors(findings)
        if found:
            raise InjectionError(f"The code has errors: {_summary(found)}", found)
        program = Program(parse(text), False)
        path = Path(
            PathKind.INJECTED,
            program,
            [Frame(None, program.tree.roots, FrameKind.BODY)],
            self._clocks.snapshot(),
            self.base,
            user,
        )
        self._paths.append(path)
        self._note_time(now)
        self._run_path(path, now)
        self._sweep()
        self._flush_state()

    def cancel(self, run_log_id: str, now: float, user: str | None = None) -> None:
        """Cancel a running command, an armed Watch/Alarm, a Wait, a timed Pause/Hold or a line
        waiting for its threshold (section 7); raises `LineActionError` otherwise."""
        self._line_action(run_log_id, now, user, force=False)

    def force(self, run_log_id: str, now: float, user: str | None = None) -> None:
        """Run a waiting line now, end a Wait or timed Pause/Hold, fire a Watch/Alarm."""
        self._line_action(run_log_id, now, user, force=True)

    def _line_action(self, log_id: str, now: float, user: str | None, *, force: bool) -> None:
        verb = "forced" if force else "cancelled"
        name = self._names.get(log_id)
        if name is None:
            raise LineActionError(f"No run-log line '{log_id}' in this run")
        if name in FIXED:
            raise LineActionError(f"'{name}' lines can be neither cancelled nor forced")
        target = self._live.get(log_id)
        if target is None:
            if name in ("Pause", "Hold"):
                raise LineActionError(
                    f"'{name}' without a duration cannot be {verb}; use Un{name.lower()}"
                )
            raise LineActionError(f"Run-log line '{log_id}' has finished; it cannot be {verb}")
        if isinstance(target, Path):
            pending = target.pending
            assert pending is not None
            if force:
                pending.forced = True
                self._forced.add(log_id)
            else:
                target.pending = None
                self._live.pop(log_id, None)
                self._finish(pending.log, LineState.CANCELLED, now)
                self._line_done(pending.log)
        elif isinstance(target, Arm):
            if force:
                target.forced = True
                self._forced.add(log_id)
            else:
                self._disarm(target, LineState.CANCELLED, now)
        elif isinstance(target, _Command):
            if force:
                raise LineActionError(
                    f"'{name}' is a running command; it can be cancelled, not forced"
                )
            self._live.pop(log_id, None)
            self._commands.pop(log_id, None)
            self._ctx.cancel_command(target.handle)
            self._finish(target.log, LineState.CANCELLED, now)
            self._line_done(target.log)
        elif isinstance(target, _Timed):
            self._leave(now, target.state, LineState.FORCED if force else LineState.CANCELLED)
        who = user or "The operator"
        self._events.append(LogMessage("info", f"{who} {verb} run-log line {log_id} ({name})"))
        self._flush_state()

    # -- the scan -------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """One scan: advance timelines, poll commands, check watches, advance every path."""
        self._tick_no += 1
        if not self._clock_set:
            self._clock_set = True
            self._now = now
        dt = now - self._now if now > self._now else 0.0
        self._now = max(self._now, now)
        flowing = self._state is not SystemState.PAUSED and self._state is not (
            SystemState.HOLDING
        )
        if flowing:
            self._clocks.time += dt
        if self._amount_tags is None or self._amount_tags:
            self._read_amounts(flowing)
        timed = self._timed
        if timed is not None and self._state is timed.state and now - self._run_start >= (
            timed.until - EPSILON
        ):
            self._leave(now, timed.state)
        if self._commands:
            self._poll_commands(now)
        if self._arms and self._state in (SystemState.RUNNING, SystemState.STOPPED):
            self._check_arms(now)
        self._run_paths(now)
        self._update_progress()
        self._flush_state()

    def _run_paths(self, now: float) -> None:
        running = self._state is SystemState.RUNNING
        for path in list(self._paths):
            if not path.done and (running or not path.program.is_method):
                self._run_path(path, now)
        self._sweep()

    def _sweep(self) -> None:
        if any(p.done for p in self._paths):
            for path in self._paths:
                if path.done and path.arm is not None and path.arm.active is path:
                    path.arm.active = None
            self._paths = [p for p in self._paths if not p.done]

    def _flush_state(self) -> None:
        if self._state_dirty:
            self._state_dirty = False
            self._events.append(MethodStateChanged())

    def _read_amounts(self, flowing: bool) -> None:
        if self._amount_tags is None:
            self._amount_tags = tuple(dict.fromkeys(self._ctx.base_units().values()))
        for tag in self._amount_tags:
            try:
                value = self._ctx.tag_value(tag)
            except Exception:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            current = float(value)
            last = self._amount_last.get(tag)
            self._amount_last[tag] = current
            if flowing and last is not None:
                amounts = self._clocks.amounts
                amounts[tag] = amounts.get(tag, 0.0) + (current - last)

    def _poll_commands(self, now: float) -> None:
        for log_id, command in list(self._commands.items()):
            handle = command.handle
            state = LineState(handle.state)
            progress = handle.progress
            log = command.log
            if state is LineState.RUNNING:
                if progress != command.progress:
                    command.progress = progress
                    log.progress = progress
                    self._emit(log)
                continue
            del self._commands[log_id]
            self._live.pop(log_id, None)
            log.progress = progress
            if state is LineState.FAILED:
                error = handle.error or "failed"
                self._fail_log(log, error, now)
            else:
                self._finish(log, state, now)
                self._line_done(log)

    def _check_arms(self, now: float) -> None:
        tick = self._tick_no
        for arm in list(self._arms):
            if arm.active is not None or arm.last_tick == tick:
                continue
            try:
                holds = arm.forced or arm.condition.holds(self._value(arm.condition.tag))
            except Exception:  # a tag the engine cannot read now: the condition does not hold
                holds = False
            if holds:
                self._fire(arm, now)

    def _value(self, tag: str) -> ScalarValue:
        own = self._own.get(tag)
        return own() if own is not None else self._ctx.tag_value(tag)

    def _fire(self, arm: Arm, now: float) -> None:
        forced, arm.forced = arm.forced, False
        arm.last_tick = self._tick_no
        arm.fired += 1
        if not arm.is_alarm:
            self._arms.remove(arm)
            self._live.pop(arm.log.id, None)
            self._finish(arm.log, LineState.FORCED if forced else LineState.COMPLETED, now)
            self._line_done(arm.log)
        path = Path(
            PathKind.ALARM if arm.is_alarm else PathKind.WATCH,
            arm.program,
            [Frame(arm.line.id, arm.line.children, FrameKind.BODY, block=None)],
            self._clocks.snapshot(),
            arm.base,
            arm.user,
            arm.ancestors,
            arm if arm.is_alarm else None,
        )
        if arm.is_alarm:
            arm.active = path
        self._paths.append(path)

    def _disarm(self, arm: Arm, state: LineState, now: float) -> None:
        if arm in self._arms:
            self._arms.remove(arm)
        self._live.pop(arm.log.id, None)
        self._finish(arm.log, state, now)
        self._line_done(arm.log)

    def _update_progress(self) -> None:
        for path in self._paths:
            pending = path.pending
            if pending is None or pending.kind is PendingKind.LOCK:
                continue
            if pending.kind is PendingKind.WAIT:
                span = pending.target - pending.start
                done = self._clocks.time - pending.start
            else:
                span = pending.target
                done = path.timeline().position(self._clocks, pending.timeline_kind)
            progress = 1.0 if span <= 0 else max(0.0, min(1.0, done / span))
            log = pending.log
            if log.progress is None or abs(progress - log.progress) >= 0.01:
                log.progress = round(progress, 3)
                self._emit(log)

    # -- paths ----------------------------------------------------------------------------------

    def _halted(self, path: Path) -> bool:
        return path.done or (path.program.is_method and self._state is not SystemState.RUNNING)

    def _run_path(self, path: Path, now: float) -> None:
        budget = MAX_INSTRUCTIONS_PER_SCAN
        while budget > 0:
            if self._halted(path):
                return
            pending = path.pending
            if pending is not None:
                if not self._ready(path, pending):
                    return
                path.pending = None
                self._live.pop(pending.log.id, None)
                budget -= 1
                if pending.kind is PendingKind.WAIT:
                    self._complete(pending.log, now)
                elif pending.kind is PendingKind.LOCK:
                    self._enter_block(path, pending.line, pending.log, now)
                else:
                    pending.log.progress = None
                    pending.log.cancellable = pending.log.forcible = False
                    self._execute(path, pending.line, pending.log, now)
                continue
            frame = path.frames[-1]
            body = frame.body
            if frame.index >= len(body):
                if frame.kind is FrameKind.MACRO:
                    path.frames.pop()
                    continue
                if frame.kind is FrameKind.BODY:
                    path.done = True
                return
            line = body[frame.index]
            frame.index += 1
            if not line.is_instruction:
                continue
            frame.last_id = line.id
            budget -= 1
            log = self._new_log(line, line.text, now, path.user, path.program.is_method)
            if line.threshold is not None and not self._threshold(path, line, log, now):
                return
            self._execute(path, line, log, now)

    def _threshold(self, path: Path, line: Line, log: RunLogLine, now: float) -> bool:
        """True when the line may run now; otherwise the path waits on it."""
        try:
            kind, scale = self._resolve_base(path.base)
        except ArgumentError as exc:
            self._fail(path, line, log, str(exc), now)
            return False
        target = (line.threshold or 0.0) * scale
        if path.timeline().position(self._clocks, kind) + EPSILON >= target:
            return True
        fixed = line.name in FIXED
        log.cancellable = log.forcible = not fixed
        log.progress = 0.0
        path.pending = Pending(PendingKind.THRESHOLD, line, log, kind, target)
        self._live[log.id] = path
        self._emit(log)
        return False

    def _ready(self, path: Path, pending: Pending) -> bool:
        if pending.forced:
            return True
        if pending.kind is PendingKind.THRESHOLD:
            position = path.timeline().position(self._clocks, pending.timeline_kind)
            return position + EPSILON >= pending.target
        if pending.kind is PendingKind.WAIT:
            return self._clocks.time + EPSILON >= pending.target
        return self._lock_free(path)

    def _resolve_base(self, base: str) -> tuple[str, float]:
        """(timeline kind, factor from the base unit to that timeline's native unit)."""
        cached = self._bases.get(base)
        if cached is not None:
            return cached
        bases = self._ctx.base_units()
        check_base(base, bases)
        ureg = self._ctx.ureg
        if base in TIME_BASES:
            resolved = (TIME, factor(ureg, base, "s"))
        else:
            tag = bases[base]
            unit = self._ctx.tag_unit(tag)
            try:
                scale = 1.0 if unit is None or unit == base else factor(ureg, base, unit)
            except Exception as exc:
                raise ArgumentError(f"Base '{base}' does not fit '{tag}' in {unit}") from exc
            resolved = (tag, scale)
        self._bases[base] = resolved
        return resolved

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
            self._started.add(line_id)
            self._completed.discard(line_id)
            self._state_dirty = True
        return log

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

    def _fail_log(self, log: RunLogLine, message: str, now: float) -> None:
        log.message = message
        self._finish(log, LineState.FAILED, now)
        if log.line_id is not None:
            self._failed.add(log.line_id)
            self._state_dirty = True
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
        self._fail_log(log, message, now)

    # -- instructions ---------------------------------------------------------------------------

    def _execute(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        handler = _HANDLERS.get(line.name)
        try:
            if handler is not None:
                handler(self, path, line, log, now)
            elif line.name in self._ctx.command_names():
                self._command(path, line, log, now)
            else:
                raise ArgumentError(f"Unknown instruction '{line.name}'")
        except ArgumentError as exc:
            self._fail(path, line, log, str(exc), now)

    def _command(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        try:
            handle = self._ctx.start_command(line.name, line.argument, log.id)
        except Exception as exc:
            self._fail(path, line, log, str(exc) or type(exc).__name__, now)
            return
        command = _Command(handle, log)
        self._commands[log.id] = command
        self._live[log.id] = command
        self._running(log, cancellable=True, forcible=False)

    def _i_block(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        if self._lock_free(path):
            self._enter_block(path, line, log, now)
        else:
            path.pending = Pending(PendingKind.LOCK, line, log)
            self._running(log, cancellable=False, forcible=False)

    def _lock_free(self, path: Path) -> bool:
        if not self._blocks:
            return True
        chain = path.chain()
        return all(any(b is c for c in chain) for b in self._blocks)

    def _enter_block(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        block = RunningBlock(line.argument or "", line.id, self._clocks.snapshot(), path, log)
        self._blocks.append(block)
        path.frames.append(Frame(line.id, line.children, FrameKind.BLOCK, block=block))
        self._running(log, cancellable=False, forcible=False)

    def _end_innermost(self, now: float) -> None:
        block = self._blocks.pop()
        owner = block.path
        for i, frame in enumerate(owner.frames):
            if frame.block is block:
                del owner.frames[i:]
                if owner.pending is not None:
                    self._live.pop(owner.pending.log.id, None)
                    self._finish(owner.pending.log, LineState.CANCELLED, now)
                    self._line_done(owner.pending.log)
                    owner.pending = None
                break
        for arm in [a for a in self._arms if a.block is block]:
            self._disarm(arm, LineState.CANCELLED, now)
        self._complete(block.log, now)

    def _i_end_block(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        if not self._blocks:
            self._events.append(LogMessage("warning", "End block: no block is running"))
        else:
            self._end_innermost(now)
        self._complete(log, now)

    def _i_end_blocks(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        while self._blocks:
            self._end_innermost(now)
        self._complete(log, now)

    def _i_watch(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        text = line.argument or ""
        result = self._conditions.get(text)
        if result is None:
            if self._tags is None:
                self._tags = tag_info(self._ctx)
            result = check_condition(text, self._tags, self._ctx.ureg)
            self._conditions[text] = result
        if isinstance(result, ConditionProblem):
            raise ArgumentError(result.message)
        self._arm(path, line, log, result)

    def _arm(self, path: Path, line: Line, log: RunLogLine, condition: Condition) -> None:
        chain = path.chain()
        arm = Arm(
            line.name == "Alarm",
            line,
            path.program,
            condition,
            log,
            chain[-1] if chain else None,
            chain,
            path.base,
            path.user,
        )
        self._arms.append(arm)
        self._live[log.id] = arm
        self._running(log, cancellable=True, forcible=True)

    def _i_macro(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        self._macros[line.argument or ""] = (path.program, line.id)
        self._complete(log, now)

    def _i_call_macro(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        name = line.argument or ""
        found = self._macros.get(name)
        if found is None:
            defined = ", ".join(sorted(self._macros)) or "none"
            raise ArgumentError(f"Macro '{name}' is not defined (defined: {defined})")
        if name in path.macros():
            chain = " -> ".join([*path.macros(), name])
            raise ArgumentError(f"Macro '{name}' calls itself: {chain}")
        program, macro_id = found
        macro_line = program.tree.by_id[macro_id]
        if program is self._program:
            self._macros_run.add(macro_id)
        path.frames.append(Frame(macro_id, macro_line.children, FrameKind.MACRO, macro=name))
        self._complete(log, now)

    def _i_base(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        unit = line.argument or ""
        check_base(unit, self._ctx.base_units())
        path.base = unit
        self._complete(log, now)

    def _duration(self, text: str) -> float:
        seconds = self._durations.get(text)
        if seconds is None:
            seconds = self._durations[text] = parse_duration(text, self._ctx.ureg)
        return seconds

    def _i_wait(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        seconds = self._duration(line.argument or "")
        start = self._clocks.time
        if seconds <= 0:
            self._complete(log, now)
            return
        log.progress = 0.0
        path.pending = Pending(PendingKind.WAIT, line, log, TIME, start + seconds, start)
        self._live[log.id] = path
        self._running(log, cancellable=True, forcible=True)

    def _i_mark(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        self._mark = line.argument or ""
        self._events.append(MarkSet(self._mark))
        self._complete(log, now)

    def _i_info(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        text = line.argument or ""
        if line.name == "Info":
            self._events.append(LogMessage("info", text))
        elif line.name == "Warning":
            self._events.append(LogMessage("warning", text))
        else:
            self._events.append(LogMessage("error", text))
        self._complete(log, now)

    def _i_notify(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        self._events.append(Notification(line.argument or ""))
        self._complete(log, now)

    def _i_pause(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        target = SystemState.PAUSED if line.name == "Pause" else SystemState.HOLDING
        seconds = None
        if line.argument is not None:
            seconds = self._duration(line.argument)
        if self._state not in ACTIVE:
            raise ArgumentError(f"'{line.name}': no run is active")
        if self._state is target or (
            target is SystemState.HOLDING and self._state is SystemState.PAUSED
        ):
            self._complete(log, now)
            return
        if target is SystemState.PAUSED:
            self._enter_pause(now)
        else:
            self._set_state(SystemState.HOLDING)
        if seconds is None:
            self._complete(log, now)
            return
        if self._timed is not None:
            self._finish(self._timed.log, LineState.CANCELLED, now)
            self._live.pop(self._timed.log.id, None)
        self._timed = _Timed(log, target, now - self._run_start + seconds)
        self._live[log.id] = self._timed
        self._running(log, cancellable=True, forcible=True)

    def _i_unpause(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        state = SystemState.PAUSED if line.name == "Unpause" else SystemState.HOLDING
        if self._state is not state:
            raise ArgumentError(f"'{line.name}': the unit is {self._state.value}")
        self._complete(log, now)
        self._leave(now, state)

    def _i_stop(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        if self._state not in ACTIVE:
            raise ArgumentError(f"'{line.name}': no run is active")
        self._complete(log, now)
        if line.name == "Stop":
            self._end_run(now, "Stop", SystemState.STOPPED, path.user)
        else:
            self._restart(now, path.user)

    def _i_increment(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        self._run_counter += 1
        self._complete(log, now)

    def _i_run_counter(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        self._run_counter = parse_run_counter(line.argument or "")
        self._complete(log, now)

    def _i_batch(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        self._batch = line.argument or ""
        self._complete(log, now)

    def _i_simulate(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        if self._tags is None:
            self._tags = tag_info(self._ctx)
        if line.name == "Simulate":
            arg = parse_simulate(line.argument or "", self._tags, self._ctx.ureg)
            self._ctx.simulate(arg.tag, arg.value, arg.unit)
            self._simulated.add(arg.tag)
        else:
            tag = parse_simulate_off(line.argument or "", self._tags)
            self._ctx.simulate_off(tag)
            self._simulated.discard(tag)
        self._complete(log, now)


_Handler = Callable[[Interpreter, Path, Line, RunLogLine, float], None]

_HANDLERS: Mapping[str, _Handler] = MappingProxyType({
    "Block": Interpreter._i_block,
    "End block": Interpreter._i_end_block,
    "End blocks": Interpreter._i_end_blocks,
    "Watch": Interpreter._i_watch,
    "Alarm": Interpreter._i_watch,
    "Macro": Interpreter._i_macro,
    "Call macro": Interpreter._i_call_macro,
    "Base": Interpreter._i_base,
    "Wait": Interpreter._i_wait,
    "Mark": Interpreter._i_mark,
    "Info": Interpreter._i_info,
    "Warning": Interpreter._i_info,
    "Error": Interpreter._i_info,
    "Pause": Interpreter._i_pause,
    "Hold": Interpreter._i_pause,
    "Unpause": Interpreter._i_unpause,
    "Unhold": Interpreter._i_unpause,
    "Stop": Interpreter._i_stop,
    "Restart": Interpreter._i_stop,
    "Increment run counter": Interpreter._i_increment,
    "Run counter": Interpreter._i_run_counter,
    "Batch": Interpreter._i_batch,
    "Simulate": Interpreter._i_simulate,
    "Simulate off": Interpreter._i_simulate,
    "Notify": Interpreter._i_notify,
})
assert set(_HANDLERS) == set(BUILTINS)
