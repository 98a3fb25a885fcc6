"""The operator interface: what the link (aggregator commands) and the CLI may ask of the engine.

Run control, injected code, method edits and dry runs, cancelling and forcing run-log lines, plus
the read-only views the link needs (registration, state). Every request runs at once against
the interpreter at the current wall time; a refusal becomes an `EngineCommandError` whose
message is shown to the person who asked, and the events a request caused are reported at once
rather than at the next scan. Implements `engine.ports.EngineControl`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.describe import plain as _plain
from engine.lang.analyzer import Finding as LangFinding
from engine.lang.api import AnalyzerContext, SystemState
from engine.ports import EngineCommandError, MethodSaved, Registration
from engine.scan import ScanPipeline
from protocol.models import ControlAction, Finding, ScalarValue

if TYPE_CHECKING:
    from engine.model_run import ModelRuns


class OperatorInterface(ScanPipeline):
    """The operator layer of `engine.engine.Engine` (on top of its scan pipeline)."""

    computer_name: str
    uod_hash: str
    _refusal: str | None = None  # why every request but Stop is refused (shutting down)
    _models: ModelRuns | None = None  # run_model's simulations, made at the first one

    def refuse_requests(self, reason: str) -> None:
        """From now on every request but Stop is refused with `reason` (the engine shuts down:
        an aggregator's Start must not bring back a run whose outputs were just made safe)."""
        self._refusal = reason

    def _check_open(self) -> None:
        if self._refusal is not None:
            raise EngineCommandError(self._refusal)

    def scan_now(self) -> None:
        """One scan at once, between the grid's, after an operator request: the line it queued
        runs, what it set is written to the hardware and every changed value is reported now,
        instead of waiting up to a scan interval for the next grid point and another for the
        report. The link calls it on the thread that runs the grid scans (the event loop), so
        it never overlaps a scan. Nothing before the first scan (the engine is not running
        yet) nor once shutting down (the outputs were made safe and must stay so)."""
        if self._refusal is not None or self._last_scan is None:
            return
        self.scan(max(self.clock.monotonic(), self._last_scan))

    def _now(self) -> tuple[float, float]:
        now = self.clock.monotonic()
        return now, self.clock.wall(now)

    def registration(self) -> Registration:
        return Registration(
            engine_id=f"{self.computer_name}/{self.uod.name}",
            computer_name=self.computer_name,
            uod_name=self.uod.name,
            uod=self.uod.describe(),
            uod_hash=self.uod_hash,
            method_hash=self._method_hash,
        )

    def control(self, action: ControlAction | str, user: str | None) -> None:
        from engine.lang.interpreter import RunControlError

        now, wall = self._now()
        try:
            action = ControlAction(action)
        except ValueError:
            raise EngineCommandError(f"unknown control action {action!r}") from None
        if action is not ControlAction.STOP:
            self._check_open()
        method = {
            ControlAction.START: self.interpreter.start,
            ControlAction.STOP: self.interpreter.stop,
            ControlAction.PAUSE: self.interpreter.pause,
            ControlAction.UNPAUSE: self.interpreter.unpause,
            ControlAction.HOLD: self.interpreter.hold,
            ControlAction.UNHOLD: self.interpreter.unhold,
            ControlAction.RESTART: self.interpreter.restart,
        }[action]
        self._control_user = user
        try:
            method(wall, user)
        except RunControlError as exc:
            raise EngineCommandError(str(exc)) from None
        finally:
            self._process_events(now)
            self._control_user = None
            self._update_system_tags(wall)
            self._report_control(wall)

    def _interpreter_command(self, action: Callable[[float], object]) -> None:
        """Runs one operator request against the interpreter at wall time: any refusal becomes
        an EngineCommandError for whoever asked, and the events it caused are handled at once
        (not at the next scan), also when it was refused half-way."""
        self._check_open()
        now, wall = self._now()
        try:
            action(wall)
        except Exception as exc:
            raise EngineCommandError(_plain(exc)) from None
        finally:
            self._process_events(now)

    def inject(self, pcode: str, user: str | None) -> None:
        self._interpreter_command(lambda wall: self.interpreter.inject(pcode, wall, user))

    def set_method(
        self,
        text: str,
        expected_version: int,
        line_ids: list[str | None] | None,
        user: str | None,
    ) -> MethodSaved:
        self._check_open()
        now, wall = self._now()
        current = int(self.interpreter.method.version)
        if expected_version != current:
            raise EngineCommandError(
                f"method version is {current}, not {expected_version}",
                data={"current_version": current},
            )
        try:
            result = self.interpreter.set_method(text, user=user, line_ids=line_ids, now=wall)
        except Exception as exc:  # MethodEditError says why the edit was refused
            raise EngineCommandError(_plain(exc)) from None
        finally:
            self._process_events(now)
        return MethodSaved(int(result.version), [_wire_finding(f) for f in result.findings])

    def analyze_method(self, text: str) -> list[Finding]:
        """Analyzer findings for a method text without applying it (SetMethod.dry_run)."""
        from engine.lang.analyzer import analyze

        return [_wire_finding(f) for f in analyze(text, self._analyzer_context())]

    def _analyzer_context(self) -> AnalyzerContext:
        """The tags and commands a method is checked against (the engine itself)."""
        raise NotImplementedError

    def cancel_line(self, run_log_id: str, user: str | None) -> None:
        self._interpreter_command(lambda wall: self.interpreter.cancel(run_log_id, wall, user))

    def force_line(self, run_log_id: str, user: str | None) -> None:
        self._interpreter_command(lambda wall: self.interpreter.force(run_log_id, wall, user))

    def resume_line(self, run_log_id: str, user: str | None, *, skip: bool = False) -> None:
        """Fix and resume: run a failed method line again with its current text, or skip it;
        the state it may leave Paused for is reported at once, as after a control action."""
        self._check_open()
        now, wall = self._now()
        try:
            self.interpreter.resume_failed(run_log_id, wall, user, skip=skip)
        except Exception as exc:  # LineActionError says why
            raise EngineCommandError(_plain(exc)) from None
        finally:
            self._process_events(now)
            self._update_system_tags(wall)
            self._report_control(wall)

    def run_model(
        self,
        model_id: str,
        text: str | None,
        speed: float | None,
        duration: float | None,
        send: Callable[[str, str, Any], None],
    ) -> None:
        """run_model: the method (default: the current one) simulated on the unit's process
        model in a child process (engine/model_run.py); nothing on the unit changes."""
        from engine.model_run import ModelRuns

        if self._models is None:
            self._models = ModelRuns(self.uod, send)
        method = self.interpreter.method.text if text is None else text
        try:
            self._models.submit(model_id, method, speed, duration)
        except ValueError as exc:
            raise EngineCommandError(str(exc)) from None

    def cancel_model(self, model_id: str) -> None:
        if self._models is None or not self._models.cancel(model_id):
            raise EngineCommandError(f"no simulation {model_id!r} is queued or running")

    @property
    def state(self) -> SystemState:
        return self.interpreter.state

    @property
    def started_once(self) -> bool:
        return self._started_once

    def output_values(self) -> dict[str, ScalarValue]:
        return {name: self.store[name].value for name in self._outputs}


def _wire_finding(f: LangFinding) -> Finding:
    return Finding(
        severity=f.severity,
        code=f.code,
        message=f.message,
        line=max(1, f.line),
        col_start=max(1, f.col_start),
        col_end=max(1, f.col_end),
        suggestion=f.suggestion,
    )
