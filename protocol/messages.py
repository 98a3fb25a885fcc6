"""Every frame the engine and the aggregator exchange over `/engine/ws`.

Each message is a pydantic model whose `type` field discriminates the union. The rule numbers in
docstrings refer to protocol/README.md.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeAlias

from pydantic import Field

from protocol.model_run import CancelModel, ModelProgress, RunModel
from protocol.models import (
    AlarmAction,
    AlarmEvent,
    AlarmName,
    ControlAction,
    ErrorLogEntry,
    FiniteJson,
    LineState,
    MethodLine,
    RunLogLine,
    Seconds,
    SystemState,
    TagValue,
    Timestamp,
    UodDescription,
    WireModel,
)

MAX_SEQ = 2**63 - 1

Seq = Annotated[int, Field(ge=1, le=MAX_SEQ, description="this message's own sequence number")]
HighWater = Annotated[
    int, Field(ge=0, le=MAX_SEQ, description="highest sequence number assigned or stored so far")
]
CorrelationId = Annotated[str, Field(min_length=1, max_length=128)]
User = Annotated[str, Field(min_length=1, max_length=128, description="the person who asked")]
Version = Annotated[str, Field(pattern=r"^\d+\.\d+$", description="major.minor")]

__all__ = [
    "Ack",
    "AlarmCommand",
    "AlarmsUpdated",
    "CancelLine",
    "CancelModel",
    "CommandResult",
    "ControlCommand",
    "ControlState",
    "ErrorLog",
    "ForceLine",
    "Heartbeat",
    "InvokeCommand",
    "LineState",
    "LiveDemand",
    "LiveTags",
    "Method",
    "MethodState",
    "ModelProgress",
    "Ping",
    "ProtocolErrorMessage",
    "RegisterEngine",
    "Registered",
    "ResendRequest",
    "ResumeLine",
    "RunLog",
    "RunModel",
    "RunStarted",
    "RunStopped",
    "TagsUpdated",
]


# --- engine -> aggregator: registration (rule 1) ---------------------------------------------


class RegisterEngine(WireModel):
    """First frame of every connection (rule 1)."""

    type: Literal["RegisterEngine"] = "RegisterEngine"
    engine_id: str = Field(min_length=1, max_length=256, description="computer name + UOD name")
    computer_name: str
    uod_name: str
    session_id: str = Field(min_length=1, description="new for every engine process start")
    engine_version: str
    protocol_version: Version
    uod: UodDescription
    uod_hash: str
    method_hash: str
    clock: Timestamp = Field(description="engine clock when the frame was sent")
    last_seq: HighWater = 0


# --- engine -> aggregator: stored messages (rules 3, 4) ----------------------------------------


class _Stored(WireModel):
    """A message that enters the durable outbox and is acknowledged once stored (rules 3, 5)."""

    seq: Seq
    time: Timestamp = Field(description="engine clock when the message was created")
    run_id: str | None = None


class TagsUpdated(_Stored):
    """Tags that changed since the previous TagsUpdated, each with its scan time."""

    type: Literal["TagsUpdated"] = "TagsUpdated"
    tags: list[TagValue] = Field(min_length=1)
    sample: bool = Field(
        default=True,
        description="a data-log sample (stored for the run); False: a live update between samples",
    )


class RunStarted(_Stored):
    type: Literal["RunStarted"] = "RunStarted"
    run_id: str = Field(min_length=1)
    started: Timestamp
    method_version: int = Field(ge=0)
    user: str | None = None
    run_counter: int = Field(default=0, ge=0)


class RunStopped(_Stored):
    type: Literal["RunStopped"] = "RunStopped"
    run_id: str = Field(min_length=1)
    stopped: Timestamp
    reason: str = Field(description="stop, restart, engine restart, ...")
    user: str | None = None


class RunLog(_Stored):
    """New or changed run-log lines only, never the whole log."""

    type: Literal["RunLog"] = "RunLog"
    lines: list[RunLogLine] = Field(min_length=1)


class Method(_Stored):
    """The method text as lines with stable ids, sent whenever it changes."""

    type: Literal["Method"] = "Method"
    version: int = Field(ge=0)
    lines: list[MethodLine]
    user: str | None = None


class MethodState(_Stored):
    """Which method lines have started, completed or failed in the current run."""

    type: Literal["MethodState"] = "MethodState"
    version: int = Field(ge=0)
    started: list[str] = Field(default_factory=list)
    completed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


class ControlState(_Stored):
    type: Literal["ControlState"] = "ControlState"
    state: SystemState
    method_status: Literal["OK", "Error"] = "OK"
    block: str = ""
    run_time: Seconds = 0.0
    process_time: Seconds = 0.0
    run_counter: int = Field(default=0, ge=0)
    batch_name: str = ""
    connection_status: Literal["Connected", "Disconnected"] = "Connected"


class ErrorLog(_Stored):
    type: Literal["ErrorLog"] = "ErrorLog"
    entries: list[ErrorLogEntry] = Field(min_length=1)


class AlarmsUpdated(_Stored):
    """Managed-alarm transitions (since 1.2), in the order they happened. Stored like every other
    message, so the outbox keeps them while the aggregator is away. `snapshot`: sent when the
    engine starts, with every alarm of the UOD in its current state (cause `snapshot`)."""

    type: Literal["AlarmsUpdated"] = "AlarmsUpdated"
    events: list[AlarmEvent] = Field(min_length=1)
    snapshot: bool = False


# --- engine -> aggregator: not stored ------------------------------------------------------------


class Heartbeat(WireModel):
    """Sent every heartbeat interval (rule 10). Not stored; `seq` is the engine's high-water mark,
    which lets the aggregator notice a gap at the tail of the stream (rule 7)."""

    type: Literal["Heartbeat"] = "Heartbeat"
    seq: HighWater
    time: Timestamp


class LiveTags(WireModel):
    """Tag changes between data-log samples, for whoever watches the unit (since 1.5).

    Not stored, so not numbered, acknowledged or resent: a live value is superseded by the next
    scan's, and every change also reaches storage with the next `TagsUpdated` sample. Sent only
    while the unit is watched (`LiveDemand`), to an aggregator registered with 1.5 or later, and
    only when every stored message emitted before it has been sent, so it never overtakes one
    on the wire; otherwise the engine sends the same tags as a `TagsUpdated` with
    `sample: false`, as before 1.5."""

    type: Literal["LiveTags"] = "LiveTags"
    time: Timestamp = Field(description="engine clock when the message was created")
    run_id: str | None = None
    tags: list[TagValue] = Field(min_length=1)


class CommandResult(WireModel):
    """The engine's answer to a request from the aggregator (rule 9), correlated by `id`. Kept
    well below the frame limit: a SetMethod's findings are bounded (models.bounded_findings)."""

    type: Literal["CommandResult"] = "CommandResult"
    id: CorrelationId
    seq: HighWater = 0
    ok: bool
    error: str | None = None
    data: FiniteJson = None


# --- aggregator -> engine ------------------------------------------------------------------------


class Registered(WireModel):
    """Answer to RegisterEngine (rule 2)."""

    type: Literal["Registered"] = "Registered"
    engine_id: str
    session_id: str
    last_seq: HighWater = Field(
        description="highest seq durably stored for this engine (0 if none)"
    )
    clock_offset: float = Field(
        allow_inf_nan=False, description="aggregator clock minus engine clock, seconds"
    )
    protocol_version: Version
    heartbeat_interval: float = Field(default=5.0, gt=0, allow_inf_nan=False)


class Ack(WireModel):
    """Everything up to and including `seq` is committed (rule 5)."""

    type: Literal["Ack"] = "Ack"
    seq: HighWater


class ResendRequest(WireModel):
    """Asks the engine to resend from `from_seq` after a gap (rule 7)."""

    type: Literal["ResendRequest"] = "ResendRequest"
    from_seq: Seq


class InvokeCommand(WireModel):
    """P-code injected by a person (pcode.md section 8)."""

    type: Literal["InvokeCommand"] = "InvokeCommand"
    id: CorrelationId
    user: User
    pcode: str = Field(min_length=1, max_length=65536)


class ControlCommand(WireModel):
    type: Literal["ControlCommand"] = "ControlCommand"
    id: CorrelationId
    user: User
    command: ControlAction


class SetMethod(WireModel):
    """A method edit. `expected_version` guards against overwriting someone else's edit."""

    type: Literal["SetMethod"] = "SetMethod"
    id: CorrelationId
    user: User
    text: str = Field(max_length=1_000_000)
    expected_version: int = Field(ge=0)
    dry_run: bool = Field(
        default=False, description="only analyze the text; the result's data holds the findings"
    )
    line_ids: list[str | None] | None = Field(
        default=None,
        description="id of each line of text, None for new lines; matched by diff if absent",
    )
    deadline: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="aggregator wall-clock time (Unix seconds, since 1.1) after which the edit "
        "must not be applied: the engine compares it with its own clock plus "
        "Registered.clock_offset and, when it is past, answers ok=false with data "
        '{"expired": true} and changes nothing. Absent: no deadline.',
    )


class CancelLine(WireModel):
    type: Literal["CancelLine"] = "CancelLine"
    id: CorrelationId
    user: User
    run_log_id: str = Field(min_length=1)


class ForceLine(WireModel):
    type: Literal["ForceLine"] = "ForceLine"
    id: CorrelationId
    user: User
    run_log_id: str = Field(min_length=1)


class ResumeLine(WireModel):
    """Fix and resume (since 1.1): run a failed method line again with its current text, or skip
    it (`skip`). Only for a line that failed during the current error pause; the run continues
    once every such line has been resumed or skipped."""

    type: Literal["ResumeLine"] = "ResumeLine"
    id: CorrelationId
    user: User
    run_log_id: str = Field(min_length=1, description="the failed attempt's run-log line")
    skip: bool = Field(default=False, description="skip the line instead of running it again")


class AlarmCommand(WireModel):
    """An operator's action on one alarm (since 1.2), answered by a CommandResult. The engine
    refuses, with a reason in the result's error, an action the alarm's state does not allow
    (ack of an acknowledged alarm), a shelve without `minutes` and `reason` or beyond the
    alarm's max_shelve_minutes, and out_of_service without `reason`."""

    type: Literal["AlarmCommand"] = "AlarmCommand"
    id: CorrelationId
    user: User
    alarm: AlarmName
    action: AlarmAction
    comment: str | None = Field(default=None, max_length=1000)
    minutes: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="shelve: for how long"
    )
    reason: str | None = Field(
        default=None, max_length=1000, description="shelve, out_of_service: why (required)"
    )


class LiveDemand(WireModel):
    """Whether anyone at the aggregator watches this engine's unit live (since 1.4).

    Watched: live tag changes every scan, as before. Not watched: nothing between data-log
    samples (each sample carries the latest value of every tag changed since the previous one,
    and updates the aggregator's live view), so an unwatched unit costs a frame per data-log
    interval instead of one per scan. On a change to watched the engine sends a live snapshot of
    every tag at its next scan. An engine that is never told stays watched (full rate); each new
    connection starts watched. Not a request: no `id`, no CommandResult. Sent by the aggregator
    right after `Registered` and whenever the demand changes (a fall is held a few seconds, so a
    flapping subscription does not flap the engine), only to engines registered with 1.4 or
    later."""

    type: Literal["LiveDemand"] = "LiveDemand"
    watched: bool


class Ping(WireModel):
    """Aggregator heartbeat (rule 10); the engine answers with a CommandResult."""

    type: Literal["Ping"] = "Ping"
    id: CorrelationId
    time: Timestamp


# --- both directions ------------------------------------------------------------------------------


class ProtocolErrorMessage(WireModel):
    """Reply to a frame that does not parse, is too large or breaks a rule (rule 11)."""

    type: Literal["ProtocolError"] = "ProtocolError"
    rule: int | None = Field(default=None, ge=1, le=12)
    message: str
    seq: int | None = Field(default=None, description="seq of the offending frame, when known")
    seq_end: int | None = Field(
        default=None,
        description="rule 7 from the engine: seqs `seq`..`seq_end` are gone from its outbox",
    )
    fatal: bool = Field(default=False, description="the sender closes the connection after this")


STORED_MESSAGE_TYPES = (
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

_StoredUnion: TypeAlias = (
    TagsUpdated
    | RunStarted
    | RunStopped
    | RunLog
    | Method
    | MethodState
    | ControlState
    | ErrorLog
    | AlarmsUpdated
)
_FromEngine: TypeAlias = (
    RegisterEngine
    | _StoredUnion
    | Heartbeat
    | LiveTags
    | CommandResult
    | ModelProgress
    | ProtocolErrorMessage
)
_FromAggregator: TypeAlias = (
    Registered
    | Ack
    | ResendRequest
    | InvokeCommand
    | ControlCommand
    | SetMethod
    | CancelLine
    | ForceLine
    | ResumeLine
    | AlarmCommand
    | RunModel
    | CancelModel
    | LiveDemand
    | Ping
    | ProtocolErrorMessage
)

StoredMessage = Annotated[_StoredUnion, Field(discriminator="type")]
EngineMessage = Annotated[_FromEngine, Field(discriminator="type")]
AggregatorMessage = Annotated[_FromAggregator, Field(discriminator="type")]
Message = Annotated[_FromEngine | _FromAggregator, Field(discriminator="type")]
