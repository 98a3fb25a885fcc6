"""The two seams between the engine and its link to the aggregator.

The engine produces protocol messages through a `MessageSink` and is controlled through
`EngineControl`. Keeping both as protocols lets the engine run standalone (a sink that prints),
under `simulate` (a sink that writes JSON lines) or connected (the link's durable outbox) with the
same scan code, and lets the link be tested without an engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import JsonValue

from protocol.messages import (
    AlarmsUpdated,
    ControlState,
    ErrorLog,
    Method,
    MethodState,
    RunLog,
    RunStarted,
    RunStopped,
    TagsUpdated,
)
from protocol.models import AlarmAction, ControlAction, Finding, UodDescription

StoredMessageT = TypeVar(
    "StoredMessageT",
    TagsUpdated,
    RunStarted,
    RunStopped,
    RunLog,
    Method,
    MethodState,
    ControlState,
    ErrorLog,
    AlarmsUpdated,
)


class EngineCommandError(Exception):
    """A request from outside (operator, aggregator) that the engine refuses; the message says why
    and is shown to the person who asked. `data` carries what a program needs to act on the
    refusal (e.g. the current method version) so that nobody has to parse the message."""

    def __init__(self, message: str, *, data: JsonValue = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


@dataclass(frozen=True)
class MethodSaved:
    """A method edit the engine accepted: its new version and the analyzer's findings (warnings;
    an edit with errors is refused while a run is active)."""

    version: int
    findings: list[Finding] = field(default_factory=list)


@dataclass(frozen=True)
class Registration:
    """What the link needs to build RegisterEngine (rule 1)."""

    engine_id: str  # f"{computer_name}/{uod_name}"
    computer_name: str
    uod_name: str
    uod: UodDescription
    uod_hash: str
    method_hash: str


class MessageSink(Protocol):
    """Receives every stored message the engine produces.

    `kind` is one of protocol's stored messages; `fields` are all its fields except `seq`, which
    the durable outbox assigns. Called from the scan, so it must be fast and never block on the
    network.
    """

    def emit(self, kind: type[StoredMessageT], /, **fields: Any) -> None: ...


class EngineControl(Protocol):
    """What the link calls for aggregator->engine commands; each raises EngineCommandError when
    refused."""

    def registration(self) -> Registration: ...

    def control(self, action: ControlAction, user: str) -> None: ...

    def inject(self, pcode: str, user: str) -> None: ...

    def set_method(
        self, text: str, expected_version: int, line_ids: list[str | None] | None, user: str
    ) -> MethodSaved:
        """A stale `expected_version` raises EngineCommandError with
        data={"current_version": N}."""
        ...

    def cancel_line(self, run_log_id: str, user: str) -> None: ...

    def force_line(self, run_log_id: str, user: str) -> None: ...

    def resume_line(self, run_log_id: str, user: str, *, skip: bool) -> None:
        """Run a failed method line again with its current text, or skip it (fix and resume)."""
        ...

    def alarm_action(
        self,
        name: str,
        action: AlarmAction,
        user: str,
        *,
        comment: str | None,
        minutes: float | None,
        reason: str | None,
    ) -> None:
        """Ack, shelve, unshelve, take out of service or return to service one alarm."""
        ...
