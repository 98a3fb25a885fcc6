"""Everything a run's batch report shows, read from the store in one pass: metadata, the method
as run and the library version it was (with that version's approval signatures), operator
actions from the audit trail, run log, marks, alarms, errors, the plotted tags, engine clock
offsets, and every signature on the run with its manifestation and its validity now."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from pydantic import ValidationError
from sqlmodel import SQLModel

from aggregator.api.plot import build_plot
from aggregator.api.records_schemas import SignatureView
from aggregator.api.schemas import PlotData
from aggregator.api.signatures_api import record_signatures, verified
from aggregator.context import AppContext
from aggregator.models import AuditEntry, ErrorLogEntry, RunClockOffset
from aggregator.report import prediction
from aggregator.store.methods import text_sha256
from aggregator.store.rows import RunRow
from aggregator.store.signatures import method_version_parts
from protocol import MethodLine, RunLogLine, UodDescription

T_AUDIT = SQLModel.metadata.tables[str(AuditEntry.__tablename__)]
T_ERRORS = SQLModel.metadata.tables[str(ErrorLogEntry.__tablename__)]
T_OFFSET = SQLModel.metadata.tables[str(RunClockOffset.__tablename__)]
PLOT_POINTS = 400
MAX_ROWS = 2000
"""Per table: a report of a very long run stays printable; what is left out is counted."""


def utc(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class MethodAsRun:
    version: int
    time: float
    user: str | None
    text: str


@dataclass
class LibrarySource:
    name: str
    version: int
    state: str
    approvals: list[SignatureView]


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    omitted: int = 0


@dataclass
class Report:
    run_id: str
    facts: list[tuple[str, str]]
    methods: list[MethodAsRun]
    source: LibrarySource | None
    tables: list[Table]
    plot: PlotData | None
    plot_groups: list[tuple[str, list[str]]]
    signatures: list[SignatureView]
    released_by: list[SignatureView] = field(default_factory=list)
    generated: float = 0.0


def _uod(run: RunRow) -> UodDescription | None:
    try:
        return UodDescription.model_validate_json(run.uod_json or "{}")
    except ValidationError:
        return None


def _methods(ctx: AppContext, pk: int) -> list[MethodAsRun]:
    out = []
    for m in ctx.storage.run_methods(pk):
        try:
            lines = [MethodLine.model_validate(x) for x in json.loads(m.lines_json)]
        except (ValueError, ValidationError):
            lines = []
        text = "\n".join(line.text for line in lines)
        out.append(MethodAsRun(m.version, m.time, m.user, text))
    return out


def _source(ctx: AppContext, methods: list[MethodAsRun]) -> LibrarySource | None:
    """The library version whose text the run started with (the newest such version)."""
    if not methods:
        return None
    found = ctx.storage.methods.versions_with_text(text_sha256(methods[0].text))
    if not found:
        return None
    version = found[-1]
    rows = ctx.storage.signatures.of_record("method_version", version.id)
    approvals = verified(ctx, rows, method_version_parts(version))
    return LibrarySource(version.name, version.version, version.state, approvals)


def _cut(rows: list[list[str]]) -> tuple[list[list[str]], int]:
    return rows[:MAX_ROWS], max(0, len(rows) - MAX_ROWS)


def _actions(conn: sa.Connection, pk: int) -> Table:
    rows = []
    for row in conn.execute(
        sa.select(T_AUDIT).where(T_AUDIT.c.run_pk == pk).order_by(T_AUDIT.c.id)
    ).all():
        try:
            new = json.loads(row.detail_json).get("new")
        except (ValueError, AttributeError):
            new = None
        detail = new if isinstance(new, dict) else {}
        what = ", ".join(
            f"{k}={v}" for k, v in detail.items() if k not in ("text", "old") and v is not None
        )
        rows.append([utc(row.time), row.user, row.action, what[:300]])
    kept, omitted = _cut(rows)
    return Table(
        "Operator actions (audit trail)", ["UTC", "User", "Action", "Detail"], kept, omitted
    )


def _runlog(ctx: AppContext, pk: int) -> Table:
    rows = []
    for raw in ctx.storage.run_log(pk):
        try:
            line = RunLogLine.model_validate(raw)
        except ValidationError:
            continue
        rows.append([utc(line.start), utc(line.end), line.text, line.state, line.user or "method"])
    kept, omitted = _cut(rows)
    return Table("Run log", ["Start", "End", "Instruction", "State", "By"], kept, omitted)


def _errors(conn: sa.Connection, pk: int) -> Table:
    rows = [
        [utc(r.time), r.level, r.source, r.message[:500]]
        for r in conn.execute(
            sa.select(T_ERRORS).where(T_ERRORS.c.run_pk == pk).order_by(T_ERRORS.c.id)
        ).all()
    ]
    kept, omitted = _cut(rows)
    return Table("Errors and warnings", ["UTC", "Level", "Source", "Message"], kept, omitted)


def _alarms(conn: sa.Connection, pk: int) -> Table | None:
    table = SQLModel.metadata.tables.get("alarm_journal")
    if table is None:
        return None
    rows = [
        [utc(r.time), r.name, r.priority, f"{r.previous} -> {r.state}", r.cause, r.user or ""]
        for r in conn.execute(
            sa.select(table).where(table.c.run_pk == pk).order_by(table.c.id)
        ).all()
    ]
    kept, omitted = _cut(rows)
    return Table("Alarms", ["UTC", "Alarm", "Priority", "State", "Cause", "User"], kept, omitted)


def _offsets(conn: sa.Connection, pk: int) -> Table:
    rows = [
        [utc(r.time), r.source, f"{r.offset:+.3f} s"]
        for r in conn.execute(
            sa.select(T_OFFSET).where(T_OFFSET.c.run_pk == pk).order_by(T_OFFSET.c.id)
        ).all()
    ]
    kept, omitted = _cut(rows)
    return Table(
        "Engine clock offset (aggregator clock minus engine clock)",
        ["Measured (UTC)", "At", "Offset"],
        kept,
        omitted,
    )


def _plot(
    ctx: AppContext, run: RunRow, uod: UodDescription | None
) -> tuple[PlotData, list[tuple[str, list[str]]]]:
    groups: list[tuple[str, list[str]]] = []
    if uod is not None:
        for sub in uod.plot.subplots:
            for axis in sub.axes:
                groups.append((axis.label, list(axis.tags)))
    names = list(dict.fromkeys(t for _, tags in groups for t in tags)) or None
    try:
        plot = build_plot(ctx.storage, run, names, None, None, PLOT_POINTS)
    except Exception:  # an unknown tag in an old UOD must not lose the report
        plot = build_plot(ctx.storage, run, None, None, None, PLOT_POINTS)
        groups = []
    if not groups:
        groups = [(s.tag, [s.tag]) for s in plot.series]
    return plot, groups


def gather(ctx: AppContext, run: RunRow, now: float) -> Report:
    pk = int(run.pk)
    uod = _uod(run)
    methods = _methods(ctx, pk)
    with ctx.storage.engine.connect() as conn:
        tables = [_actions(conn, pk), _runlog(ctx, pk)]
        alarms = _alarms(conn, pk)
        tables.extend([t for t in (alarms, _errors(conn, pk), _offsets(conn, pk)) if t])
    plot, groups = _plot(ctx, run, uod)
    marks = [[utc(a.t), f"{a.run_time:.1f} s", a.tag, a.text] for a in plot.annotations]
    tables.insert(2, Table("Marks", ["UTC", "Run time", "Tag", "Text"], marks))
    predicted = prediction.prediction_rows(
        ctx, run, [(a.text, a.run_time) for a in plot.annotations]
    )
    if predicted is not None:
        tables.insert(3, Table(prediction.TITLE, prediction.COLUMNS, predicted))
    signatures = record_signatures(ctx, "run", pk)
    facts = [
        ("Run", run.run_id),
        ("Unit", run.engine_id),
        ("UOD", f"{run.uod_name} (hash {run.uod_hash or '-'})"),
        ("Batch", run.batch_name or "-"),
        ("Started", f"{utc(run.started)} by {run.started_by or '-'}"),
        ("Stopped", f"{utc(run.stopped)} by {run.stopped_by or '-'}"),
        ("Stop reason", run.stop_reason or "-"),
    ]
    return Report(
        run_id=run.run_id,
        facts=facts,
        methods=methods,
        source=_source(ctx, methods),
        tables=tables,
        plot=plot,
        plot_groups=groups,
        signatures=signatures,
        released_by=[s for s in signatures if s.meaning == "released"],
        generated=now,
    )
