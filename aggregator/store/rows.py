"""The rows the store hands to the rest of the aggregator: frozen, typed views of table rows.

Each class names the columns it carries; `columns` selects exactly those and `from_row` builds
the view, so a column added to a table reaches callers only once it is added here."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

import sqlalchemy as sa


@dataclass(frozen=True)
class _Row:
    @classmethod
    def columns(cls, table: sa.Table) -> list[sa.ColumnElement[Any]]:
        return [table.c[f.name] for f in fields(cls)]

    @classmethod
    def from_row(cls, row: Any, **extra: Any) -> Self:
        """`row` is a SQLAlchemy Row (or any mapping-like row) holding at least our columns."""
        mapping = row._mapping
        names = [f.name for f in fields(cls)]
        return cls(**{n: extra[n] if n in extra else mapping[n] for n in names})


@dataclass(frozen=True)
class RunRow(_Row):
    """A stored run, whole."""

    pk: int
    run_id: str
    engine_id: str
    session_id: str
    started: float
    stopped: float | None
    stop_reason: str | None
    started_by: str | None
    stopped_by: str | None
    run_counter: int
    method_version: int
    uod_name: str
    uod_hash: str
    uod_json: str
    method_state_json: str
    batch_name: str


@dataclass(frozen=True)
class RunListing(_Row):
    """A run as `list_runs` gives it: without its UOD and method state."""

    pk: int
    run_id: str
    engine_id: str
    started: float
    stopped: float | None
    stop_reason: str | None
    started_by: str | None
    method_version: int
    uod_name: str
    run_counter: int


@dataclass(frozen=True)
class EngineRow(_Row):
    """A registered engine, with the run it has open (None: none)."""

    id: str
    computer_name: str
    uod_name: str
    session_id: str
    engine_version: str
    protocol_version: str
    uod_json: str
    uod_hash: str
    method_hash: str
    token_name: str
    registered_at: float
    last_seen: float
    control_json: str
    method_json: str
    open_run_id: str | None


@dataclass(frozen=True)
class ErrorLogRow(_Row):
    id: int
    engine_id: str
    run_pk: int | None
    time: float
    level: str
    source: str
    message: str
    seq: int | None


@dataclass(frozen=True)
class RunMethodRow(_Row):
    """One method version a run ran with; `lines_json` is the method's lines as sent."""

    id: int
    run_pk: int
    version: int
    time: float
    user: str | None
    lines_json: str


@dataclass(frozen=True)
class UserRow(_Row):
    id: int
    name: str
    role: str
    password_hash: str
    created: float
    full_name: str


@dataclass(frozen=True)
class SessionUser(_Row):
    """The user behind a valid login session."""

    id: int
    name: str
    role: str


@dataclass(frozen=True)
class EngineTokenRow(_Row):
    name: str
    engine_id: str | None
    created: float
    revoked: bool
    revoked_at: float | None


@dataclass(frozen=True)
class TokenState(_Row):
    """An engine token as it was before a revocation."""

    name: str
    engine_id: str | None
    revoked: bool


@dataclass(frozen=True)
class MethodVersionRow(_Row):
    """One version of a library method, with its method's name and its text's hash."""

    id: int
    method_id: int
    name: str
    version: int
    text: str
    author: str
    created: float
    state: str
    sha256: str


@dataclass(frozen=True)
class MethodRow(_Row):
    """A library method with all its versions, oldest first."""

    id: int
    name: str
    created: float
    created_by: str
    versions: tuple[MethodVersionRow, ...]


@dataclass(frozen=True)
class MethodListing:
    """A library method with its newest version's number and state and its approved version."""

    id: int
    name: str
    created: float
    created_by: str
    latest_version: int
    latest_state: str
    updated: float
    approved_version: int | None


@dataclass(frozen=True)
class UnitSourceRow:
    """The library version last loaded onto a unit (in its current state), when and by whom."""

    version: MethodVersionRow
    loaded: float
    loaded_by: str


@dataclass(frozen=True)
class SignatureRow(_Row):
    """A stored electronic signature (rows are only ever inserted)."""

    id: int
    kind: str
    record_id: int
    label: str
    meaning: str
    user: str
    full_name: str
    time: float
    sha256: str
    parts_json: str
    comment: str
    audit_id: int | None


@dataclass(frozen=True)
class AuditRow(_Row):
    """One entry of the hash-chained audit trail."""

    id: int
    time: float
    user: str
    action: str
    unit_id: str | None
    run_pk: int | None
    detail_json: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AlarmStateRow:
    """An alarm's current state as pages, the alarm book and escalation read it."""

    unit_id: str
    name: str
    state: str
    active: bool
    priority: str
    message: str
    time: float | None
    unack_since: float | None
    escalated: int
    user: str | None
    comment: str | None
    value: Any
    shelved_until: float | None


@dataclass(frozen=True)
class AlarmJournalRow:
    """One journaled alarm transition, with the run it happened in."""

    id: int
    unit_id: str
    run_id: str | None
    name: str
    state: str
    previous: str
    active: bool
    time: float
    cause: str
    user: str | None
    comment: str | None
    value: Any
    shelved_until: float | None
    priority: str
    message: str


@dataclass(frozen=True)
class DeliveryFailureRow(_Row):
    """A notification that could not be delivered, as admins review it."""

    id: int
    time: float
    channel: str
    user: str
    recipient: str
    subject: str
    error: str
    attempts: int
