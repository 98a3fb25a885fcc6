"""Database tables (sqlmodel). The Alembic migrations in aggregator/migrations are the source of
truth for the schema on disk; these classes must stay in step with them.

Tag samples are the bulk of the data, so they live in two tables: `sample_recent` (one row per
value, written in the same transaction as the ack-worthy batch, so acks are honest) and
`sample_chunk` (compressed blocks of many values, written by compaction), which keeps a long run
cheap to store and lets a windowed read touch only the blocks that overlap the window.
"""

from __future__ import annotations

from sqlalchemy import BigInteger as SABigInteger
from sqlalchemy import Column, Index, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class Engine(SQLModel, table=True):
    __tablename__ = "engine"

    id: str = Field(primary_key=True, max_length=256)
    computer_name: str = ""
    uod_name: str = ""
    session_id: str = ""
    engine_version: str = ""
    protocol_version: str = ""
    uod_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    uod_hash: str = ""
    method_hash: str = ""
    token_name: str = ""
    registered_at: float = 0.0
    last_seen: float = 0.0
    control_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    method_json: str = Field(
        default="{}", sa_column=Column(Text, nullable=False, default="{}", server_default="{}")
    )
    """The engine's latest Method message, so a run started after an aggregator restart still
    records the method it ran."""


class EngineSeq(SQLModel, table=True):
    """Highest seq durably stored per engine: what Registered.last_seq reports (rule 2)."""

    __tablename__ = "engine_seq"

    engine_id: str = Field(primary_key=True, max_length=256)
    last_seq: int = Field(default=0, sa_column=Column(SABigInteger, nullable=False, default=0))
    updated: float = 0.0


class ReceivedDigest(SQLModel, table=True):
    """Digests of the stored messages, 64 seqs to a row, so that a resent copy can be compared
    with the first one (rule 6); layout and retention in aggregator/store/digests.py."""

    __tablename__ = "received_digest"

    engine_id: str = Field(primary_key=True, max_length=256)
    block: int = Field(sa_column=Column(SABigInteger, primary_key=True, autoincrement=False))
    slots: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Run(SQLModel, table=True):
    __tablename__ = "run"

    pk: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(max_length=256, unique=True)
    engine_id: str = Field(max_length=256, index=True)
    session_id: str = ""
    started: float
    stopped: float | None = None
    stop_reason: str | None = None
    started_by: str | None = None
    stopped_by: str | None = None
    run_counter: int = 0
    method_version: int = 0
    uod_name: str = ""
    uod_hash: str = ""
    uod_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    method_state_json: str = Field(
        default="{}", sa_column=Column(Text, nullable=False, default="{}")
    )
    batch_name: str = Field(
        default="", sa_column=Column(String(256), nullable=False, default="", server_default="")
    )
    """The method's `Batch:` name, from the engine's ControlState while the run is open."""


class RunMethod(SQLModel, table=True):
    """Every method version a run ran with (the method as run)."""

    __tablename__ = "run_method"
    __table_args__ = (UniqueConstraint("run_pk", "version", name="uq_run_method_version"),)

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int = Field(index=True)
    version: int
    time: float
    user: str | None = None
    lines_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))


class Tag(SQLModel, table=True):
    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("engine_id", "name", name="uq_tag_engine_name"),)

    id: int | None = Field(default=None, primary_key=True)
    engine_id: str = Field(max_length=256)
    name: str = Field(max_length=256)
    unit: str | None = None


class SampleRecent(SQLModel, table=True):
    __tablename__ = "sample_recent"
    __table_args__ = (Index("ix_sample_recent_run_tag_t", "run_pk", "tag_id", "t"),)

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int
    tag_id: int
    t: float
    num: float | None = None
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    kind: str = Field(default="f", max_length=1)


class SampleChunk(SQLModel, table=True):
    __tablename__ = "sample_chunk"
    __table_args__ = (Index("ix_sample_chunk_run_tag_first", "run_pk", "tag_id", "t_first"),)

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int
    tag_id: int
    t_first: float
    t_last: float
    count: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Summary of the values (aggregator.chunks.chunk_summary), so that a plot whose buckets are
    # wider than the chunk reads these instead of decoding the blob. v_kind None: no summary.
    v_kind: str | None = Field(default=None, max_length=1)
    v_min: float | None = None
    t_min: float | None = None
    v_max: float | None = None
    t_max: float | None = None
    v_first: float | None = None
    v_last: float | None = None


class RunLogEntry(SQLModel, table=True):
    """One run-log line; a later message with the same line id replaces it."""

    __tablename__ = "run_log"
    __table_args__ = (UniqueConstraint("run_pk", "line_key", name="uq_run_log_line"),)

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int = Field(index=True)
    line_key: str = Field(max_length=256)
    start: float
    data_json: str = Field(sa_column=Column(Text, nullable=False))


class ErrorLogEntry(SQLModel, table=True):
    __tablename__ = "error_log"

    id: int | None = Field(default=None, primary_key=True)
    engine_id: str = Field(max_length=256, index=True)
    run_pk: int | None = Field(default=None, index=True)
    time: float
    level: str = Field(max_length=16)
    source: str = Field(default="engine", max_length=64)
    message: str = Field(sa_column=Column(Text, nullable=False))
    seq: int | None = Field(default=None, sa_column=Column(SABigInteger, nullable=True))


class Contributor(SQLModel, table=True):
    """People who acted on a run (filled by the HTTP API)."""

    __tablename__ = "contributor"

    run_pk: int = Field(primary_key=True)
    user: str = Field(primary_key=True, max_length=128)
    role: str = Field(default="", max_length=32)
    first_action: float = 0.0
    last_action: float = 0.0


class EngineToken(SQLModel, table=True):
    __tablename__ = "engine_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=256, unique=True)
    token_hash: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created: float
    revoked: bool = False
    engine_id: str | None = Field(default=None, max_length=256, index=True)
    """The one engine id this token may register: given at creation, else the first it used."""
    revoked_at: float | None = None


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    role: str = Field(max_length=16)
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    created: float
    full_name: str = Field(
        default="", sa_column=Column(String(256), nullable=False, default="", server_default="")
    )
    """The printed name shown with the user's electronic signatures (21 CFR 11.50)."""


class SessionToken(SQLModel, table=True):
    """Login sessions; only the SHA-256 of the bearer token is stored."""

    __tablename__ = "session_token"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(index=True)
    created: float
    expires: float


class AuditEntry(SQLModel, table=True):
    """Append-only audit trail; each row hashes the previous one so edits are detectable."""

    __tablename__ = "audit"

    id: int | None = Field(default=None, primary_key=True)
    time: float
    user: str = Field(max_length=128)
    action: str = Field(max_length=64)
    unit_id: str | None = Field(default=None, max_length=256)
    run_pk: int | None = None
    detail_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The newest audit entry, anchored with a keyed HMAC (aggregator/audit.py): one row."""

    __tablename__ = "audit_head"

    id: int = Field(primary_key=True)
    last_id: int
    last_hash: str = Field(max_length=64)
    mac: str = Field(max_length=64)


class QuarantinedMessage(SQLModel, table=True):
    """An engine message that was received and acknowledged but failed to apply: kept whole, with
    why, until an admin replays it (aggregator/store/quarantine.py). Its seq counts as stored."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True)
    engine_id: str = Field(max_length=256, index=True)
    session_id: str = Field(default="", max_length=256)
    seq: int = Field(sa_column=Column(SABigInteger, nullable=False))
    kind: str = Field(max_length=32)
    received: float
    error: str = Field(sa_column=Column(Text, nullable=False))
    message_json: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int = 0
    """Replays that failed as well."""


# --- managed alarms and notifications (issue 17) -------------------------------------------------


class AlarmJournalEntry(SQLModel, table=True):
    """Every alarm transition an engine reported (AlarmsUpdated), in order; append-only. An
    event during a run carries its run_pk: it is part of that run's record."""

    __tablename__ = "alarm_journal"
    __table_args__ = (Index("ix_alarm_journal_engine_time", "engine_id", "time"),)

    id: int | None = Field(default=None, primary_key=True)
    engine_id: str = Field(max_length=256)
    run_pk: int | None = Field(default=None, index=True)
    seq: int = Field(sa_column=Column(SABigInteger, nullable=False))
    name: str = Field(max_length=128)
    state: str = Field(max_length=32)
    previous: str = Field(max_length=32)
    active: bool = False
    time: float
    cause: str = Field(max_length=32)
    user: str | None = Field(default=None, max_length=128)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    value_json: str = Field(default="null", sa_column=Column(Text, nullable=False))
    shelved_until: float | None = None
    priority: str = Field(max_length=16)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class AlarmCurrent(SQLModel, table=True):
    """Each alarm's latest state per unit: what a page shows at once and escalation reads."""

    __tablename__ = "alarm_current"

    engine_id: str = Field(primary_key=True, max_length=256)
    name: str = Field(primary_key=True, max_length=128)
    state: str = Field(max_length=32)
    active: bool = False
    time: float
    """The latest transition."""
    unack_since: float | None = None
    """When the alarm last became unacknowledged (escalation counts from here)."""
    escalated: int = 0
    """Escalation steps already notified since `unack_since`."""
    user: str | None = Field(default=None, max_length=128)
    comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    value_json: str = Field(default="null", sa_column=Column(Text, nullable=False))
    shelved_until: float | None = None
    priority: str = Field(max_length=16)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    run_pk: int | None = None


class NotificationPrefs(SQLModel, table=True):
    """A user's notification choices (aggregator/notify/prefs.py), as JSON."""

    __tablename__ = "notification_prefs"

    user_id: int = Field(primary_key=True)
    prefs_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    updated: float = 0.0


class PushSubscription(SQLModel, table=True):
    """One browser's Web Push subscription (RFC 8030 endpoint and RFC 8291 keys)."""

    __tablename__ = "push_subscription"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(index=True)
    endpoint: str = Field(sa_column=Column(String(2048), nullable=False, unique=True))
    p256dh: str = Field(max_length=256)
    auth: str = Field(max_length=64)
    created: float


class NotificationFailure(SQLModel, table=True):
    """A notification that could not be delivered after its retries (or was refused at once):
    shown to admins, never dropped silently."""

    __tablename__ = "notification_failure"

    id: int | None = Field(default=None, primary_key=True)
    time: float = Field(index=True)
    channel: str = Field(max_length=16)
    user: str = Field(default="", max_length=128)
    recipient: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    subject: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    error: str = Field(sa_column=Column(Text, nullable=False))
    attempts: int = 0


class UnitEscalation(SQLModel, table=True):
    """Who is notified, in order, when a unit's high-priority alarm stays unacknowledged."""

    __tablename__ = "unit_escalation"

    unit_id: str = Field(primary_key=True, max_length=256)
    users_json: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    updated: float = 0.0
    updated_by: str = Field(default="", max_length=128)


# --- regulated records: method library, electronic signatures, clock offsets (issue 16) -----------


class MethodRecord(SQLModel, table=True):
    """A method of the library: a name, and its versions in `method_version`."""

    __tablename__ = "method"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=256, unique=True)
    created: float
    created_by: str = Field(max_length=128)


class MethodVersionRecord(SQLModel, table=True):
    """One version of a library method. A new text is a new version, so no version's text ever
    changes; `state` moves draft -> reviewed -> approved (-> retired) by signatures only."""

    __tablename__ = "method_version"
    __table_args__ = (UniqueConstraint("method_id", "version", name="uq_method_version"),)

    id: int | None = Field(default=None, primary_key=True)
    method_id: int = Field(index=True)
    version: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    author: str = Field(max_length=128)
    created: float
    state: str = Field(default="draft", max_length=16)


class SignatureRecord(SQLModel, table=True):
    """An electronic signature: who (name and printed name), when (UTC), what it means, and the
    SHA-256 of the signed record's canonical content (with the digest of each of its parts, so
    a verification can say which part changed). Never updated or deleted."""

    __tablename__ = "signature"
    __table_args__ = (Index("ix_signature_record", "kind", "record_id"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    record_id: int
    """method_version.id, or run.pk."""
    label: str = Field(default="", max_length=512)
    meaning: str = Field(max_length=16)
    user: str = Field(max_length=128)
    full_name: str = Field(max_length=256)
    time: float
    sha256: str = Field(max_length=64)
    parts_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    audit_id: int | None = None


class UnitMethodSource(SQLModel, table=True):
    """The library version last loaded onto a unit, with the SHA-256 of its text, so that a
    later edit on the unit is recognised (the unit's text no longer hashes the same)."""

    __tablename__ = "unit_method_source"

    unit_id: str = Field(primary_key=True, max_length=256)
    method_version_id: int
    text_sha256: str = Field(max_length=64)
    loaded: float
    loaded_by: str = Field(max_length=128)


class RunClockOffset(SQLModel, table=True):
    """An engine's clock offset (aggregator clock minus engine clock, seconds) during a run, as
    measured at registration or from a heartbeat: stored when it first is known for the run and
    whenever it moves."""

    __tablename__ = "run_clock_offset"

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int = Field(index=True)
    engine_id: str = Field(max_length=256)
    time: float
    offset: float
    source: str = Field(max_length=16)


class RunPrediction(SQLModel, table=True):
    """What run_model predicted for a run's method when the run started (issue 18): the final
    result as JSON, or why there is none (no process model, the method failed, timed out)."""

    __tablename__ = "run_prediction"

    run_pk: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    requested: float
    status: str = Field(max_length=16)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    result_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))


class EngineLease(SQLModel, table=True):
    """Which registration may store an engine's frames (issue 21, store/fencing.py): each
    registration bumps the epoch; a batch is stored only if its node still holds the epoch it
    took, checked under a row lock in the batch's own transaction."""

    __tablename__ = "engine_lease"

    engine_id: str = Field(primary_key=True, max_length=256)
    epoch: int = Field(default=0, sa_column=Column(SABigInteger, nullable=False, default=0))
    holder: str = Field(default="", max_length=256)
    taken: float = 0.0
