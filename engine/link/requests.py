"""The aggregator's requests carried out against the engine (rule 9), out of the shell.

`run_request` turns one request into the engine call it names and its outcome into what the
`CommandResult` says: (ok, error, data). A refusal (`EngineCommandError`) keeps its text, cut to
`ERROR_CHARS`; any other exception is a bug inside the engine, logged here and answered with a
short pointer to the log, never a traceback on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import JsonValue

from engine.link.machine import Command
from engine.ports import EngineCommandError, EngineControl
from protocol.messages import (
    AlarmCommand,
    CancelLine,
    CancelModel,
    ControlCommand,
    ForceLine,
    InvokeCommand,
    ResumeLine,
    RunModel,
    SetMethod,
)
from protocol.models import findings_data

log = logging.getLogger("engine.link")

ERROR_CHARS = 2000
"""A refusal's text is cut to this, so a CommandResult stays far below the frame limit."""

Outcome = tuple[bool, str | None, JsonValue]
ModelProgressSink = Callable[[str, str, JsonValue], None]


def run_request(control: EngineControl, command: Command, progress: ModelProgressSink) -> Outcome:
    """Carry out one request; `progress` receives run_model's ModelProgress reports."""
    try:
        data: JsonValue = None
        if isinstance(command, ControlCommand):
            control.control(command.command, command.user)
        elif isinstance(command, InvokeCommand):
            control.inject(command.pcode, command.user)
        elif isinstance(command, SetMethod):
            if command.dry_run:
                return _analyze(control, command)
            saved = control.set_method(
                command.text, command.expected_version, command.line_ids, command.user
            )
            data = {"version": saved.version, **findings_data(saved.findings)}
        elif isinstance(command, CancelLine):
            control.cancel_line(command.run_log_id, command.user)
        elif isinstance(command, ForceLine):
            control.force_line(command.run_log_id, command.user)
        elif isinstance(command, ResumeLine):
            control.resume_line(command.run_log_id, command.user, skip=command.skip)
        elif isinstance(command, RunModel | CancelModel):
            _model_request(control, command, progress)
        elif isinstance(command, AlarmCommand):
            control.alarm_action(
                command.alarm,
                command.action,
                command.user,
                comment=command.comment,
                minutes=command.minutes,
                reason=command.reason,
            )
        return True, None, data
    except EngineCommandError as exc:
        return False, exc.message[:ERROR_CHARS], exc.data
    except Exception as exc:
        log.exception("%s %s failed inside the engine", command.type, command.id)
        return False, f"internal engine error ({type(exc).__name__}); see the engine log", None


def _model_request(
    control: EngineControl, command: RunModel | CancelModel, progress: ModelProgressSink
) -> None:
    """run_model (engine/model_run.py): queued or cancelled at once; its progress follows
    in ModelProgress frames, sent as they come (not stored: a prediction is not plant data)."""
    engine: Any = control
    if isinstance(command, RunModel):
        engine.run_model(command.id, command.text, command.speed, command.duration, progress)
    else:
        engine.cancel_model(command.model_id)


def _analyze(control: EngineControl, command: SetMethod) -> Outcome:
    """SetMethod.dry_run: findings from the engine's analyzer, when it offers one."""
    analyze = getattr(control, "analyze_method", None)
    if analyze is None:
        return False, "this engine cannot analyze a method without applying it", None
    return True, None, findings_data(analyze(command.text))
