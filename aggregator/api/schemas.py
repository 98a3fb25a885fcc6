"""Request and response bodies of the HTTP API and the /ws payloads (docs/api.md).

Requests forbid unknown fields so a misspelt field is reported instead of silently ignored;
responses reuse the protocol's models (RunLogLine, ErrorLogEntry, UodDescription, Finding) so the
browser sees exactly what the engine sent.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from aggregator.api.roles import Role
from aggregator.security import MIN_PASSWORD_LENGTH, password_problem
from protocol import (
    ControlAction,
    ErrorLogEntry,
    Finding,
    MethodLine,
    Quality,
    RunLogLine,
    ScalarValue,
    UodDescription,
)

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")]


def _policy(password: str) -> str:
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return password


NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=1024,
        description="at least 12 characters, not all whitespace, not a common password",
    ),
    AfterValidator(_policy),
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- auth and users -------------------------------------------------------------------------------


class UserInfo(BaseModel):
    name: str
    role: Role


class LoginRequest(BaseModel):
    """Unlike the other requests, unknown fields are ignored (as login always has)."""

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class LoginResult(BaseModel):
    token: str
    expires: float = Field(description="UTC epoch seconds when the token stops working")
    user: UserInfo
    username: str = Field(description="the same as user.name")
    role: Role = Field(description="the same as user.role")
    expires_in: float = Field(description="seconds the session lasts")


class UserView(BaseModel):
    name: str
    role: Role
    created: float


class UserCreate(Request):
    name: Name
    role: Role
    password: NewPassword


class UserPatch(Request):
    role: Role | None = None
    password: NewPassword | None = None


class EngineTokenCreate(Request):
    name: Name


class EngineTokenCreated(BaseModel):
    name: str
    token: str = Field(description="shown once; only its hash is stored")


# --- units ----------------------------------------------------------------------------------------


class TagState(BaseModel):
    name: str
    value: ScalarValue
    unit: str | None = None
    quality: Quality = Quality.GOOD
    tick: float = 0.0
    simulated: bool = False


class UnitSummary(BaseModel):
    id: str
    name: str
    online: bool
    stale: bool = Field(description="offline: the values shown are the last ones received")
    state: str
    method_status: str = "OK"
    run_id: str | None = None
    block: str = ""
    run_time: float = 0.0
    process_time: float = 0.0
    connection_status: str = "Disconnected"
    last_seen: float = 0.0
    required_roles: list[str] = Field(default_factory=list)
    view_roles: list[str] = Field(
        default_factory=list, description="roles that see the unit read-only (UOD view_roles)"
    )


class UnitDetail(UnitSummary):
    uod: UodDescription | None = None
    tags: list[TagState] = Field(default_factory=list)


class ControlRequest(Request):
    action: ControlAction


class InjectRequest(Request):
    pcode: str = Field(min_length=1, max_length=65536)


class CommandOutcome(BaseModel):
    ok: Literal[True] = True
    data: JsonValue = None


class MethodView(BaseModel):
    version: int
    text: str
    lines: list[MethodLine]
    started: list[str] = Field(default_factory=list)
    completed: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


class MethodPut(Request):
    text: str = Field(max_length=1_000_000)
    expected_version: int = Field(ge=0)
    line_ids: list[str | None] | None = None


class MethodCheck(Request):
    text: str = Field(max_length=1_000_000)


class MethodSaved(BaseModel):
    version: int
    findings: list[Finding] = Field(default_factory=list)
    findings_omitted: int = Field(
        default=0, description="findings beyond the first 200, counted but not listed"
    )


class Findings(BaseModel):
    findings: list[Finding]
    findings_omitted: int = Field(
        default=0, description="findings beyond the first 200, counted but not listed"
    )


class RunLogView(BaseModel):
    run_id: str | None
    lines: list[RunLogLine]


# --- plots ------------------------------------------------------------------------------------------


class PlotQuery(Query):
    tags: str | None = Field(
        default=None, max_length=2000, description="comma-separated tag names; all when absent"
    )
    start: float | None = Field(default=None, allow_inf_nan=False, description="UTC epoch seconds")
    end: float | None = Field(default=None, allow_inf_nan=False, description="UTC epoch seconds")
    points: int = Field(default=1000, ge=2, le=100_000, description="at most this many per series")


class PlotSeries(BaseModel):
    tag: str
    unit: str | None
    t: list[float]
    run_time: list[float]
    v: list[ScalarValue]


class Annotation(BaseModel):
    t: float
    run_time: float
    tag: str
    text: str


class PlotData(BaseModel):
    x_axis: str = "Run Time"
    run_id: str | None = None
    series: list[PlotSeries]
    annotations: list[Annotation] = Field(default_factory=list)


# --- runs -------------------------------------------------------------------------------------------


class RunsQuery(Query):
    unit_id: str | None = Field(default=None, max_length=256)
    since: float | None = Field(
        default=None, allow_inf_nan=False, description="runs started at or after (epoch s)"
    )
    until: float | None = Field(
        default=None, allow_inf_nan=False, description="runs started before (epoch s)"
    )
    q: str | None = Field(default=None, max_length=200, description="text to search")
    cursor: str | None = Field(default=None, max_length=18, pattern=r"^\d{1,18}$")
    limit: int = Field(default=50, ge=1, le=500)


class RunSummary(BaseModel):
    id: str
    unit_id: str
    unit_name: str
    started: float
    stopped: float | None
    stop_reason: str | None
    batch_name: str = ""
    started_by: str | None
    method_version: int
    sample_count: int = 0


class RunPage(BaseModel):
    items: list[RunSummary]
    next: str | None = Field(description="cursor of the following page; null on the last")


class MethodVersion(BaseModel):
    version: int
    time: float
    user: str | None
    lines: list[MethodLine]


class Contributor(BaseModel):
    user: str
    actions: int
    first: float
    last: float


class RunDetail(RunSummary):
    uod: UodDescription | None
    method: MethodView | None
    methods: list[MethodVersion]
    runlog: list[RunLogLine]
    errors: list[ErrorLogEntry]
    contributors: list[Contributor]


# --- audit ------------------------------------------------------------------------------------------


class AuditQuery(Query):
    cursor: int | None = Field(default=None, ge=1, le=2**62)
    limit: int = Field(default=100, ge=1, le=1000)


class AuditEntryView(BaseModel):
    id: int
    time: float
    user: str
    unit_id: str | None
    run_id: str | None
    action: str
    old: JsonValue
    new: JsonValue
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryView]
    next: int | None
