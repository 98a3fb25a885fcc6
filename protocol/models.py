"""Shared models carried inside protocol messages.

They describe a unit (its UOD) and its data in a form both sides agree on. Every model ignores
unknown fields so that a newer minor version of the protocol can add fields (rule 12).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

ScalarValue = bool | int | float | str | None
"""A tag value: number, text (categorical tags) or boolean; None when there is no value."""

Timestamp = Annotated[
    float,
    Field(allow_inf_nan=False, description="UTC time in seconds since the Unix epoch"),
]
Seconds = Annotated[float, Field(allow_inf_nan=False, ge=0, description="a duration in seconds")]


def _finite_json(value: JsonValue) -> JsonValue:
    """JSON has no Infinity or NaN: a value that carries one would not survive encoding."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("numbers must be finite")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


FiniteJson = Annotated[JsonValue, AfterValidator(_finite_json)]


def json_safe(value: JsonValue) -> JsonValue:
    """The value with every NaN and infinity as None (null), which is what encoding it would
    write: for a sender whose data may hold them (a faulted reading in a simulated trace)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


class WireModel(BaseModel):
    """Base of every protocol model: unknown fields ignored, instances immutable."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class Quality(StrEnum):
    GOOD = "good"
    STALE = "stale"
    BAD = "bad"


class SystemState(StrEnum):
    STOPPED = "Stopped"
    RUNNING = "Running"
    PAUSED = "Paused"
    HOLDING = "Holding"
    RESTARTING = "Restarting"


class LineState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FORCED = "forced"
    FAILED = "failed"


class ControlAction(StrEnum):
    START = "Start"
    STOP = "Stop"
    PAUSE = "Pause"
    UNPAUSE = "Unpause"
    HOLD = "Hold"
    UNHOLD = "Unhold"
    RESTART = "Restart"


class TagValue(WireModel):
    """One tag's value at one scan."""

    name: str = Field(min_length=1)
    value: ScalarValue
    unit: str | None = None
    tick: Timestamp = Field(description="scan time that produced the value (UTC epoch seconds)")
    quality: Quality = Quality.GOOD
    simulated: bool = Field(default=False, description="set by the P-code Simulate instruction")
    historical: bool = Field(
        default=False,
        description="replayed from the outbox after an outage (rule 8): stored, never shown as live",
    )


class RunLogLine(WireModel):
    """One line of a run log: an instruction that ran, or an operator command."""

    id: str = Field(min_length=1, description="unique within the run; stable across updates")
    line_id: str | None = Field(default=None, description="method line id; None when injected")
    text: str
    start: Timestamp
    end: Timestamp | None = None
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    state: LineState
    user: str | None = Field(default=None, description="who issued it; None means the method")
    start_values: dict[str, ScalarValue] = Field(default_factory=dict)
    end_values: dict[str, ScalarValue] = Field(default_factory=dict)
    cancellable: bool = False
    forcible: bool = False
    error: str | None = None
    retry_of: str | None = Field(
        default=None,
        description="since 1.1: id of the failed run-log line this one runs again (fix and resume)",
    )


class MethodLine(WireModel):
    id: str = Field(min_length=1, description="stable across edits of the method")
    text: str


class Finding(WireModel):
    """One analyzer finding about a method (pcode.md section 10); lines and columns are 1-based."""

    severity: Literal["error", "warning", "info"]
    code: str = ""
    message: str
    line: int = Field(ge=1)
    col_start: int = Field(default=1, ge=1)
    col_end: int = Field(default=1, ge=1)
    suggestion: str | None = None


MAX_FINDINGS = 200
"""Findings one CommandResult carries at most; `findings_omitted` counts the rest."""
FINDING_TEXT_LIMIT = 1000
"""Characters of a finding's message or suggestion carried at most."""


def bounded_findings(findings: Sequence[Finding]) -> tuple[list[Finding], int]:
    """The first MAX_FINDINGS findings, their texts cut to FINDING_TEXT_LIMIT, and how many were
    left out. An answer must stay far below the frame limit (MAX_FRAME_SIZE) whatever the method
    text: an oversized CommandResult is refused, so a saved edit would look unanswered."""
    kept = [
        f.model_copy(
            update={
                "code": f.code[:64],
                "message": f.message[:FINDING_TEXT_LIMIT],
                "suggestion": None if f.suggestion is None else f.suggestion[:FINDING_TEXT_LIMIT],
            }
        )
        for f in findings[:MAX_FINDINGS]
    ]
    return kept, max(0, len(findings) - MAX_FINDINGS)


def findings_data(findings: Sequence[Finding]) -> dict[str, JsonValue]:
    """The `findings` and `findings_omitted` of a SetMethod result's data (rule 9)."""
    kept, omitted = bounded_findings(findings)
    return {
        "findings": [f.model_dump(mode="json") for f in kept],
        "findings_omitted": omitted,
    }


class ErrorLogEntry(WireModel):
    time: Timestamp
    level: Literal["info", "warning", "error"]
    message: str
    source: str = Field(default="engine", description="engine, method, hardware, link, ...")


class ArgumentDescription(WireModel):
    """How a command's argument is entered and checked (shown as an entry field or buttons)."""

    kind: Literal["none", "number", "choice", "text"]
    units: list[str] = Field(default_factory=list, description="accepted units for a number")
    choices: list[str] = Field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = Field(default=None, description="regex a text argument must match")


class CommandDescription(WireModel):
    name: str = Field(min_length=1)
    description: str = ""
    argument: ArgumentDescription = ArgumentDescription(kind="none")
    group: str | None = Field(default=None, description="commands in one group cancel each other")


class TagDescription(WireModel):
    name: str = Field(min_length=1)
    unit: str | None = None
    kind: Literal["reading", "choice", "entry", "calculated", "accumulator", "system"]
    direction: Literal["input", "output", "none"] = "none"
    choices: list[str] = Field(default_factory=list)
    safe_value: ScalarValue = None
    description: str = ""


class ProcessValueChoice(WireModel):
    label: str
    pcode: str = Field(description="P-code injected when the button is pressed")


class ProcessValueDescription(WireModel):
    """A value shown to operators, optionally with a way to change it."""

    tag: str
    kind: Literal["readonly", "entry", "choice"] = "readonly"
    command: str | None = Field(
        default=None, description="command an entry runs: '<command>: <value> <unit>'"
    )
    units: list[str] = Field(default_factory=list, description="units an entry accepts")
    choices: list[ProcessValueChoice] = Field(default_factory=list)


class PlotAxis(WireModel):
    label: str
    tags: list[str] = Field(min_length=1)
    y_min: float | None = None
    y_max: float | None = None
    color: str | None = None


class ColorRegion(WireModel):
    """Background bands coloured by the value of a categorical tag (e.g. the inlet valve)."""

    tag: str
    colors: dict[str, str] = Field(description="tag value -> CSS colour")


class SubPlot(WireModel):
    axes: list[PlotAxis] = Field(min_length=1)
    ratio: float = Field(default=1.0, gt=0)
    color_regions: list[ColorRegion] = Field(default_factory=list)


class PlotConfiguration(WireModel):
    subplots: list[SubPlot] = Field(default_factory=list)
    x_axis_choices: list[str] = Field(
        default_factory=lambda: ["Run Time"],
        description="tags that can serve as x axis (time, volume, column volumes)",
    )
    x_axis: str = "Run Time"
    annotation_tags: list[str] = Field(
        default_factory=lambda: ["Mark"], description="tags whose changes become plot annotations"
    )


# --- managed alarms (ISA-18.2; since 1.2) ------------------------------------------------------


class AlarmPriority(StrEnum):
    """Urgency of the operator's response, lowest first (ISA-18.2 priority)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class AlarmKind(StrEnum):
    CONDITION = "condition"
    DEVIATION = "deviation"
    DISCRETE = "discrete"


class AlarmState(StrEnum):
    """The ISA-18.2 alarm states (docs/alarms.md has the transitions).

    normal: NORM; unack_active: UNACK (active, unacknowledged); ack_active: ACKED (active,
    acknowledged); rtn_unack: RTNUN (returned to normal, unacknowledged); shelved: SHLVD;
    suppressed: DSUPR (suppressed by design); out_of_service: OOSRV (removed from service).
    """

    NORMAL = "normal"
    UNACK_ACTIVE = "unack_active"
    ACK_ACTIVE = "ack_active"
    RTN_UNACK = "rtn_unack"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class AlarmCause(StrEnum):
    """What made an alarm event: its condition (after delays and deadband), a person, the clock
    (shelve expiry), the suppress_when condition, or the engine's start (snapshot)."""

    SNAPSHOT = "snapshot"
    CONDITION = "condition"
    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELVE_EXPIRED = "shelve_expired"
    SUPPRESSED = "suppressed"
    UNSUPPRESSED = "unsuppressed"
    OUT_OF_SERVICE = "out_of_service"
    RETURN_TO_SERVICE = "return_to_service"


class AlarmAction(StrEnum):
    """What an operator can do to an alarm (AlarmCommand.action)."""

    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    OUT_OF_SERVICE = "out_of_service"
    RETURN_TO_SERVICE = "return_to_service"


AlarmName = Annotated[str, Field(min_length=1, max_length=128)]


class AlarmDefinition(WireModel):
    """One alarm declared in the UOD (uod.alarm, uod.deviation_alarm, uod.discrete_alarm)."""

    name: AlarmName
    kind: AlarmKind = AlarmKind.CONDITION
    priority: AlarmPriority = AlarmPriority.MEDIUM
    message: str = Field(default="", max_length=1000, description="what the operator should do")
    condition: str = Field(
        description="when the alarm is active, as text: a P-code condition (`PT01 > 3 bar`), a "
        "deviation (`|TT01 - TT01 setpoint| > 2 degC`) or a discrete one (`Pump = Fault`)"
    )
    tag: str | None = Field(default=None, description="the process value shown with the alarm")
    delay: Seconds = Field(default=0.0, description="on-delay: active this long before raised")
    off_delay: Seconds = Field(default=0.0, description="clear this long before it returns")
    deadband: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="hysteresis in the tag's unit"
    )
    max_shelve_minutes: float = Field(
        default=60.0, ge=0, allow_inf_nan=False, description="0: the alarm cannot be shelved"
    )
    escalation_minutes: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="unacknowledged this long: notify the next people on the escalation list",
    )
    suppress_when: str | None = Field(
        default=None, description="P-code condition under which the alarm is suppressed by design"
    )


class AlarmEvent(WireModel):
    """One alarm transition, or its state in a snapshot (AlarmsUpdated)."""

    name: AlarmName
    state: AlarmState
    previous: AlarmState
    active: bool = Field(description="the condition holds (after delays and deadband)")
    time: Timestamp
    cause: AlarmCause
    user: str | None = Field(default=None, description="who acted; None for the engine")
    comment: str | None = Field(default=None, description="the operator's comment or reason")
    value: ScalarValue = Field(default=None, description="the process value at the transition")
    shelved_until: Timestamp | None = None
    priority: AlarmPriority
    message: str = ""


class UodDescription(WireModel):
    """Everything a browser or the store needs to know about a unit, without its Python code."""

    name: str = Field(min_length=1)
    author_name: str = ""
    author_email: str = ""
    hardware: str = Field(default="", description="human description of the hardware")
    filename: str = ""
    tags: list[TagDescription] = Field(default_factory=list)
    commands: list[CommandDescription] = Field(default_factory=list)
    process_values: list[ProcessValueDescription] = Field(default_factory=list)
    plot: PlotConfiguration = PlotConfiguration()
    base_units: list[str] = Field(default_factory=lambda: ["s", "min", "h"])
    required_roles: list[str] = Field(
        default_factory=list,
        description="roles that may control the unit; without view_roles also the only ones "
        "that see it (empty: every user)",
    )
    view_roles: list[str] = Field(
        default_factory=list,
        description="roles that may also see the unit and its runs, read-only",
    )
    alarms: list[AlarmDefinition] = Field(
        default_factory=list, description="since 1.2: the unit's managed alarms"
    )
    require_approved_methods: bool = Field(
        default=False,
        description="the unit starts only an approved method version of the aggregator's "
        "method library, unchanged since it was loaded, and refuses method edits during a run",
    )
    data_log_interval: float = Field(
        default=1.0, gt=0, description="seconds between stored samples"
    )
    scan_interval: float = Field(default=0.1, gt=0)
