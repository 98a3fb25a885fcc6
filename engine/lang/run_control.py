"""Run control: the operator's commands, the run's start and end, and actions on run-log lines.

| state \\ command | start   | stop    | pause        | unpause               | hold    | unhold  | restart |
|------------------|---------|---------|--------------|-----------------------|---------|---------|---------|
| Stopped          | Running | error   | error        | error                 | error   | error   | error   |
| Running          | error   | Stopped | Paused       | error                 | Holding | error   | Running |
| Paused           | error   | Stopped | error        | Running (or Holding*) | error   | error   | Running |
| Holding          | error   | Stopped | Paused       | error                 | error   | Running | Running |

\\* a pause entered from Holding returns to Holding. Any other combination raises
`RunControlError`. `start` also refuses a method with analyzer errors. `error_pause` (a failed line
or hardware) is accepted in every state: Running and Holding become Paused, and Method Status
becomes Error until the next unpause or start. While Paused after a failed line, Resume and Skip
(recovery.py) act on that line and leave Paused once every failed line has been settled.

Injected code and cancel/force live here too: they are operator actions, checked against the same
state, and (unlike the scan) they happen between scans at the time the operator acted.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.lang.analyzer import Finding, analyze, errors
from engine.lang.api import LineState, SystemState
from engine.lang.core import ACTIVE, FIXED, Command, InterpreterCore, Timed, summary
from engine.lang.parser import parse
from engine.lang.paths import Arm, Frame, FrameKind, Path, PathKind, Program
from engine.lang.runlog import LogMessage, RunStarted, RunStopped


class RunControlError(Exception):
    """An operator command that is not valid now; the message says why."""


class InjectionError(ValueError):
    """Injected code with analyzer errors; nothing of it ran."""

    def __init__(self, message: str, findings: Sequence[Finding]) -> None:
        super().__init__(message)
        self.findings = list(findings)


class LineActionError(Exception):
    """A cancel or force the line does not allow."""


class RunControl(InterpreterCore):
    def start(self, now: float, user: str | None = None) -> None:
        if self._state is not SystemState.STOPPED:
            raise RunControlError(f"Cannot start: the unit is {self._state.value}, not Stopped")
        found = errors(self.analyze())
        if found:
            raise RunControlError(f"Cannot start: the method has errors: {summary(found)}")
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
        self._after_pause(now)

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
        self._clear_failures()
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
        self._clear_failures()
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
            raise InjectionError(f"The code has errors: {summary(found)}", found)
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
        elif isinstance(target, Command):
            if force:
                raise LineActionError(
                    f"'{name}' is a running command; it can be cancelled, not forced"
                )
            self._live.pop(log_id, None)
            self._commands.pop(log_id, None)
            self._ctx.cancel_command(target.handle)
            self._finish(target.log, LineState.CANCELLED, now)
            self._line_done(target.log)
        elif isinstance(target, Timed):
            self._leave(now, target.state, LineState.FORCED if force else LineState.CANCELLED)
        who = user or "The operator"
        self._events.append(LogMessage("info", f"{who} {verb} run-log line {log_id} ({name})"))
        self._flush_state()
