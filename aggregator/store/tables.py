"""The tables the store works on, and how one sample value is kept in a `sample_recent` row.

The tables are taken from SQLModel's metadata rather than from each model's `__table__`, which
SQLModel adds when the class is built, out of mypy's sight."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

from aggregator import models as m
from protocol import ScalarValue


def _table(model: type[SQLModel]) -> sa.Table:
    name = model.__tablename__
    assert isinstance(name, str)
    return SQLModel.metadata.tables[name]


T_ENGINE = _table(m.Engine)
T_SEQ = _table(m.EngineSeq)
T_DIGEST = _table(m.ReceivedDigest)
T_RUN = _table(m.Run)
T_RUN_METHOD = _table(m.RunMethod)
T_TAG = _table(m.Tag)
T_RECENT = _table(m.SampleRecent)
T_CHUNK = _table(m.SampleChunk)
T_RUNLOG = _table(m.RunLogEntry)
T_ERRORS = _table(m.ErrorLogEntry)
T_TOKEN = _table(m.EngineToken)
T_USER = _table(m.User)
T_SESSION = _table(m.SessionToken)
T_QUARANTINE = _table(m.QuarantinedMessage)
T_CONTRIBUTOR = _table(m.Contributor)
T_AUDIT = _table(m.AuditEntry)

SampleRow = tuple[int, int, float, float | None, str | None, str]
"""(run_pk, tag_id, t, num, text, kind) of a `sample_recent` row: a tuple, inserted below
SQLAlchemy's per-row work."""


def stored_time(t: float) -> float:
    """Sample times are kept to the microsecond (chunks store whole microseconds); rounding
    every stored time the same way keeps window bounds and stored times comparable."""
    return round(t * 1_000_000) / 1_000_000


def sample_row(run_pk: int, tag_id: int, t: float, value: ScalarValue) -> SampleRow:
    t = stored_time(t)
    if type(value) is float:
        return (run_pk, tag_id, t, value, None, "f")
    if isinstance(value, bool):
        return (run_pk, tag_id, t, float(value), None, "b")
    if isinstance(value, int):
        if abs(value) < 2**53:
            return (run_pk, tag_id, t, float(value), None, "i")
        return (run_pk, tag_id, t, None, str(value), "i")
    if value is None:
        return (run_pk, tag_id, t, None, None, "n")
    return (run_pk, tag_id, t, None, str(value), "s")


def row_value(kind: str, num: float | None, text: str | None) -> ScalarValue:
    """The value of a `sample_recent` row (the inverse of sample_row)."""
    if kind == "f":
        return num
    if kind == "i":
        return (
            int(text) if num is None and text is not None else (None if num is None else int(num))
        )
    if kind == "b":
        return None if num is None else bool(num)
    if kind == "s":
        return text
    return None
