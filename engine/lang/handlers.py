"""The instruction handlers: one method per built-in instruction and the table that picks it.

`HANDLERS` maps each built-in (instructions.BUILTINS, checked at import) to its handler; a name
not in the table is a UOD command. A handler raises `ArgumentError` for an argument that does
not fit: the line fails and the run error-pauses with the path on that line (see interpreter.py).
Blocks live here as well, since `Block`, `End block` and `End blocks` are their only entry points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from engine.lang.api import LineState, SystemState
from engine.lang.conditions import Condition, ConditionProblem, check_condition, tag_info
from engine.lang.core import ACTIVE, Command, InterpreterCore, Timed
from engine.lang.instructions import (
    BUILTINS,
    ArgumentError,
    check_base,
    parse_run_counter,
    parse_simulate,
    parse_simulate_off,
)
from engine.lang.parser import Line
from engine.lang.paths import Arm, Frame, FrameKind, Path, Pending, PendingKind, RunningBlock
from engine.lang.runlog import LogMessage, MarkSet, Notification, RunLogLine
from engine.lang.suggest import did_you_mean
from engine.lang.timelines import TIME


class Handlers(InterpreterCore):
    def _execute(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        handler = HANDLERS.get(line.name)
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
        command = Command(handle, log)
        self._commands[log.id] = command
        self._live[log.id] = command
        self._running(log, cancellable=True, forcible=False)

    def _i_block(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        if self._lock_free(path):
            self._enter_block(path, line, log, now)
        else:
            path.pending = Pending(PendingKind.LOCK, line, log)
            self._running(log, cancellable=False, forcible=False)

    def _enter_block(self, path: Path, line: Line, log: RunLogLine, now: float) -> None:
        block = RunningBlock(line.argument or "", line.id, self._clocks.snapshot(), path, log)
        self._blocks.append(block)
        path.frames.append(Frame(line.id, line.children, FrameKind.BLOCK, block=block))
        self._running(log, cancellable=False, forcible=False)

    def _end_innermost(self, now: float) -> None:
        """End the innermost block and everything written inside it: the rest of its body, the
        Watches and Alarms declared in it, and the bodies of those that have already fired (they
        are part of the block's text, so they end with it, even when they ran the End line)."""
        block = self._blocks.pop()
        owner = block.path
        for i, frame in enumerate(owner.frames):
            if frame.block is block:
                del owner.frames[i:]
                self._drop_pending(owner, now)
                break
        for arm in [a for a in self._arms if a.block is block]:
            self._disarm(arm, LineState.CANCELLED, now)
        for path in self._paths:
            if not path.done and any(b is block for b in path.ancestors):
                path.done = True
                self._drop_pending(path, now)
        self._complete(block.log, now)

    def _drop_pending(self, path: Path, now: float) -> None:
        pending = path.pending
        if pending is not None:
            path.pending = None
            self._live.pop(pending.log.id, None)
            self._finish(pending.log, LineState.CANCELLED, now)
            self._line_done(pending.log)

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
            raise ArgumentError(result.message + did_you_mean(result.suggestion))
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
        self._timed = Timed(log, target, now - self._run_start + seconds)
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


Handler = Callable[[Handlers, Path, Line, RunLogLine, float], None]

HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "Block": Handlers._i_block,
        "End block": Handlers._i_end_block,
        "End blocks": Handlers._i_end_blocks,
        "Watch": Handlers._i_watch,
        "Alarm": Handlers._i_watch,
        "Macro": Handlers._i_macro,
        "Call macro": Handlers._i_call_macro,
        "Base": Handlers._i_base,
        "Wait": Handlers._i_wait,
        "Mark": Handlers._i_mark,
        "Info": Handlers._i_info,
        "Warning": Handlers._i_info,
        "Error": Handlers._i_info,
        "Pause": Handlers._i_pause,
        "Hold": Handlers._i_pause,
        "Unpause": Handlers._i_unpause,
        "Unhold": Handlers._i_unpause,
        "Stop": Handlers._i_stop,
        "Restart": Handlers._i_stop,
        "Increment run counter": Handlers._i_increment,
        "Run counter": Handlers._i_run_counter,
        "Batch": Handlers._i_batch,
        "Simulate": Handlers._i_simulate,
        "Simulate off": Handlers._i_simulate,
        "Notify": Handlers._i_notify,
    }
)
assert set(HANDLERS) == set(BUILTINS)
