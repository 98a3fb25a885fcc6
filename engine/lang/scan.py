"""The scan: what one `tick` does, and how a path walks its lines.

Every scan advances the clocks, ends a timed Pause/Hold that is due, polls running commands,
checks armed Watches and Alarms, then advances every path until each waits (on a threshold, a
Wait, a block lock, the end of a Block) or has run MAX_INSTRUCTIONS_PER_SCAN lines, so that a
method that loops through macros cannot stall the engine's scan.
"""

from __future__ import annotations

from engine.lang.api import LineState, ScalarValue, SystemState
from engine.lang.core import EPSILON, MAX_INSTRUCTIONS_PER_SCAN, InterpreterCore
from engine.lang.paths import Arm, Frame, FrameKind, Path, PathKind, PendingKind


class Scan(InterpreterCore):
    def tick(self, now: float) -> None:
        """One scan: advance timelines, poll commands, check watches, advance every path."""
        self._tick_no += 1
        self._advance(now)
        timed = self._timed
        if (
            timed is not None
            and self._state is timed.state
            and now - self._run_start >= (timed.until - EPSILON)
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
