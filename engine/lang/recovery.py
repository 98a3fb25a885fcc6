"""Fix and resume: what the operator may do about a method line that failed during a run.

A failed line error-pauses the run (run_control.py). While Paused the operator may edit the failed
line and the lines after it (editing.py allows it), then, for each failed line, choose:

- **Resume from the failed line** (`resume_failed(..., skip=False)`): the line runs again with its
  current text. A line that failed at once still has its path standing on it, so the path runs it
  when the run continues; a command that failed after it had started (its path has moved on) is
  started again on its own, at once, as soon as the run is Running again.
- **Skip it** (`skip=True`): the line counts as done; a path standing on it moves past it.

Each choice is a run-log line by the operator naming the line and the method version it acts on,
and a line run again carries `retry_of` (the failed attempt's run-log id), so the run log shows
the failed attempt, the edit and the retry. The run continues when every line that failed during
this pause has been resumed or skipped; a plain Unpause continues too (paths standing on a failed
line run it again, commands that failed mid-way are not restarted, as before this existed).
"""

from __future__ import annotations

from engine.lang.api import SystemState
from engine.lang.core import Command, Failure, InterpreterCore
from engine.lang.run_control import LineActionError


class Recovery(InterpreterCore):
    @property
    def failures(self) -> list[str]:
        """Run-log ids of the failed lines waiting for Resume or Skip, oldest first."""
        return [log_id for log_id, f in self._failures.items() if f.action is None]

    def resume_failed(
        self, run_log_id: str, now: float, user: str | None = None, *, skip: bool = False
    ) -> None:
        """Resume from (run again) or skip a method line that failed during this pause (failures
        wait only while Paused: leaving the pause settles them); raises `LineActionError`."""
        failure = self._failures.get(run_log_id)
        if failure is None:
            if run_log_id not in self._names:
                raise LineActionError(f"No run-log line '{run_log_id}' in this run")
            raise LineActionError(
                f"Run-log line '{run_log_id}' is not a failed method line waiting to be "
                "resumed or skipped"
            )
        if failure.action is not None:
            done = "resumed" if failure.action == "retry" else "skipped"
            raise LineActionError(f"Run-log line '{run_log_id}' has already been {done}")
        line = self._program.tree.by_id.get(failure.line_id)
        if not skip:
            if line is None:
                raise LineActionError(
                    f"The line of run-log line '{run_log_id}' has been removed from the method; "
                    "skip it instead"
                )
            if failure.path is None and line.name not in self._ctx.command_names():
                raise LineActionError(
                    f"Line {line.number} '{line.raw.strip()}' is not a UOD command: only a command "
                    "can run again on its own after it failed mid-way; skip it instead"
                )
        where = f"line {line.number}" if line is not None else f"run-log line {run_log_id}"
        text = (
            f"Skip {where} (method version {self._version})"
            if skip
            else f"Resume from {where} (method version {self._version})"
        )
        self._operator_line(text, now, user)
        failure.action = "skip" if skip else "retry"
        if skip:
            self._skip(failure)
        if all(f.action is not None for f in self._failures.values()):
            self._leave(now, SystemState.PAUSED)
        self._flush_state()

    def _skip(self, failure: Failure) -> None:
        self._retry_of.pop(failure.line_id, None)
        path = failure.path
        if path is not None and not path.done and path.pending is None and path.frames:
            frame = path.frames[-1]
            if frame.index < len(frame.body) and frame.body[frame.index].id == failure.line_id:
                frame.index += 1
                frame.last_id = failure.line_id
        self._failed.discard(failure.line_id)
        self._completed.add(failure.line_id)
        self._state_dirty = True

    def _after_pause(self, now: float) -> None:
        """The run left Paused or Holding: this pause's failures are settled (chosen commands to
        run again are kept until the run is Running), and once Running they start."""
        if self._failures:
            self._retries.extend(
                f for f in self._failures.values() if f.action == "retry" and f.path is None
            )
            self._failures.clear()
        if self._state is SystemState.RUNNING and self._retries:
            retries, self._retries = self._retries, []
            for failure in retries:
                self._retry_command(failure, now)

    def _retry_command(self, failure: Failure, now: float) -> None:
        """Starts the failed command's line again with its current text, outside any path (the
        path that first ran it has moved on); a failure now is a new failure like the first."""
        line = self._program.tree.by_id.get(failure.line_id)
        if line is None:
            return  # removed by an edit after Resume was chosen: nothing left to run
        self._retry_of[line.id] = failure.log.id
        log = self._new_log(line, line.text, now, failure.log.user, in_method=True)
        if line.name not in self._ctx.command_names():
            self._fail_log(log, f"'{line.name}' is not a UOD command; skip the line instead", now)
            return
        try:
            handle = self._ctx.start_command(line.name, line.argument, log.id)
        except Exception as exc:
            self._fail_log(log, str(exc) or type(exc).__name__, now)
            return
        command = Command(handle, log)
        self._commands[log.id] = command
        self._live[log.id] = command
        self._running(log, cancellable=True, forcible=False)
