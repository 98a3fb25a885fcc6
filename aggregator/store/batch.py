"""What goes into a stored batch (the decisions of the engines' IngestSessions) and what comes
out of it for the live side (errors to show, runs opened and closed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aggregator.ingest_session import CompareStored, IntegrityError, RecordGap, Store
from aggregator.store.alarms import AlarmChange


@dataclass(frozen=True)
class BatchOp:
    """One decision of an IngestSession, with the engine and session it came from."""

    engine_id: str
    session_id: str
    action: Store | CompareStored | IntegrityError | RecordGap


@dataclass(frozen=True)
class StoredError:
    """One entry of an engine's error log, as stored."""

    engine_id: str
    run_pk: int | None
    time: float
    level: str
    source: str
    message: str
    seq: int | None

    def as_json(self) -> dict[str, Any]:
        """The entry as the live side publishes it."""
        return {
            "time": self.time,
            "level": self.level,
            "source": self.source,
            "message": self.message,
            "seq": self.seq,
        }


@dataclass
class BatchResult:
    """What a committed batch changed that the live side wants to know."""

    errors: list[StoredError] = field(default_factory=list)
    runs_opened: list[tuple[str, str]] = field(default_factory=list)
    """(engine_id, run_id)"""
    runs_closed: list[tuple[str, str]] = field(default_factory=list)
    """(engine_id, run_id)"""
    quarantined: list[tuple[str, int]] = field(default_factory=list)
    """(engine_id, quarantine id) of messages that failed to apply and were kept instead"""
    alarms: list[AlarmChange] = field(default_factory=list)
    """Alarm transitions stored (AlarmsUpdated), for pages and notifications"""
