"""`/api/runs...`: the stored runs, searchable and paged, their detail and their plot."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import ValidationError

from aggregator.api.openapi import ApiRoutes, Call, Operation, Stream
from aggregator.api.roles import ApiUser
from aggregator.api.runs_csv import run_csv, run_xlsx
from aggregator.api.schemas import (
    Contributor,
    MethodVersion,
    PlotData,
    PlotQuery,
    RunDetail,
    RunPage,
    RunsQuery,
    RunSummary,
)
from aggregator.api.service import (
    ctx_of,
    method_view,
    require_run,
    run_uod,
    state_of,
    uod_of,
    uod_sees,
)
from aggregator.api.units_api import _errors, plot_of_run
from aggregator.context import AppContext
from aggregator.run_export import XLSX_MEDIA_TYPE
from aggregator.store.rows import RunRow
from aggregator.store.tables import T_AUDIT, T_CHUNK, T_CONTRIBUTOR, T_RECENT, T_RUN, T_RUN_METHOD
from protocol import Method, MethodLine, RunLogLine

TAGS = ("runs",)


def _hidden_units(app: web.Application, user: ApiUser) -> list[str]:
    """Units whose runs the user may not see: connected ones and every one seen before this
    start (an engine that has not reconnected yet must not expose its runs)."""
    known = set(ctx_of(app).live.engines) | set(state_of(app).uods)
    return sorted(unit_id for unit_id in known if not uod_sees(user.role, uod_of(app, unit_id)))


def _sample_counts(conn: sa.Connection, pks: list[int]) -> dict[int, int]:
    counts: dict[int, int] = dict.fromkeys(pks, 0)
    if not pks:
        return counts
    for pk, n in conn.execute(
        sa.select(T_RECENT.c.run_pk, sa.func.count())
        .where(T_RECENT.c.run_pk.in_(pks))
        .group_by(T_RECENT.c.run_pk)
    ):
        counts[pk] += int(n)
    for pk, n in conn.execute(
        sa.select(T_CHUNK.c.run_pk, sa.func.sum(T_CHUNK.c.count))
        .where(T_CHUNK.c.run_pk.in_(pks))
        .group_by(T_CHUNK.c.run_pk)
    ):
        counts[pk] += int(n or 0)
    return counts


def _summary(row: Any, count: int) -> RunSummary:
    return RunSummary(
        id=row.run_id,
        unit_id=row.engine_id,
        unit_name=row.uod_name or row.engine_id,
        started=row.started,
        stopped=row.stopped,
        stop_reason=row.stop_reason,
        batch_name=row.batch_name,
        started_by=row.started_by,
        method_version=row.method_version,
        sample_count=count,
    )


def _list_runs(ctx: AppContext, query: RunsQuery, hidden: list[str]) -> RunPage:
    select = sa.select(T_RUN).order_by(T_RUN.c.pk.desc()).limit(query.limit + 1)
    if query.unit_id is not None:
        select = select.where(T_RUN.c.engine_id == query.unit_id)
    if hidden:
        select = select.where(T_RUN.c.engine_id.not_in(hidden))
    if query.since is not None:
        select = select.where(T_RUN.c.started >= query.since)
    if query.until is not None:
        select = select.where(T_RUN.c.started < query.until)
    if query.cursor is not None:
        select = select.where(T_RUN.c.pk < int(query.cursor))
    if query.q:
        needle = query.q.lower()
        in_method = sa.exists().where(
            T_RUN_METHOD.c.run_pk == T_RUN.c.pk,
            sa.func.lower(T_RUN_METHOD.c.lines_json).contains(needle, autoescape=True),
        )
        select = select.where(
            sa.or_(
                sa.func.lower(T_RUN.c.run_id).contains(needle, autoescape=True),
                sa.func.lower(T_RUN.c.uod_name).contains(needle, autoescape=True),
                sa.func.lower(T_RUN.c.engine_id).contains(needle, autoescape=True),
                sa.func.lower(T_RUN.c.batch_name).contains(needle, autoescape=True),
                in_method,
            )
        )
    with ctx.storage.engine.connect() as conn:
        rows = conn.execute(select).all()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        counts = _sample_counts(conn, [r.pk for r in rows])
    return RunPage(
        items=[_summary(r, counts[r.pk]) for r in rows],
        next=str(rows[-1].pk) if more and rows else None,
    )


async def list_runs(call: Call[None, RunsQuery]) -> RunPage:
    ctx = ctx_of(call.app)
    hidden = _hidden_units(call.app, call.need_user())
    return await ctx.read(_list_runs, ctx, call.query, hidden)


def _detail(ctx: AppContext, run: RunRow) -> RunDetail:
    pk = run.pk
    with ctx.storage.engine.connect() as conn:
        count = _sample_counts(conn, [pk])[pk]
        row = conn.execute(sa.select(T_RUN).where(T_RUN.c.pk == pk)).one()
        contributors = conn.execute(
            sa.select(T_CONTRIBUTOR).where(T_CONTRIBUTOR.c.run_pk == pk)
        ).all()
        actions: dict[str, int] = dict(
            conn.execute(
                sa.select(T_AUDIT.c.user, sa.func.count())
                .where(T_AUDIT.c.run_pk == pk)
                .group_by(T_AUDIT.c.user)
            ).all()
        )
    versions: list[MethodVersion] = []
    for m in ctx.storage.run_methods(pk):
        try:
            lines = [MethodLine.model_validate(x) for x in json.loads(m.lines_json)]
        except (ValueError, ValidationError):
            lines = []
        versions.append(MethodVersion(version=m.version, time=m.time, user=m.user, lines=lines))
    try:
        method_state = json.loads(run.method_state_json or "{}")
    except ValueError:
        method_state = {}
    method = None
    if versions:
        last = versions[-1]
        method = method_view(
            Method(seq=1, time=last.time, version=last.version, lines=last.lines),
            method_state if isinstance(method_state, dict) else {},
        )
    runlog = []
    for line in ctx.storage.run_log(pk):
        try:
            runlog.append(RunLogLine.model_validate(line))
        except ValidationError:
            continue
    summary = _summary(row, count)
    return RunDetail(
        **summary.model_dump(),
        uod=run_uod(run),
        method=method,
        methods=versions,
        runlog=runlog,
        errors=_errors(ctx, run.engine_id, run.run_id),
        contributors=[
            Contributor(
                user=c.user,
                actions=int(actions.get(c.user, 0)),
                first=c.first_action,
                last=c.last_action,
            )
            for c in sorted(contributors, key=lambda c: c.first_action)
        ],
    )


async def run_detail(call: Call[None, None]) -> RunDetail:
    run = await require_run(call.app, call.need_user(), call.path("run_id"))
    ctx = ctx_of(call.app)
    return await ctx.read(_detail, ctx, run)


async def run_plot(call: Call[None, PlotQuery]) -> PlotData:
    run = await require_run(call.app, call.need_user(), call.path("run_id"))
    return await plot_of_run(ctx_of(call.app), run, call.query)


def setup(app: web.Application, routes: ApiRoutes) -> None:
    routes.add(
        app,
        Operation(
            "GET",
            "/api/runs",
            "Runs, newest first, filtered and paged",
            "viewer",
            query=RunsQuery,
            response=RunPage,
            tags=TAGS,
        ),
        list_runs,
    )
    routes.add(
        app,
        Operation(
            "GET",
            "/api/runs/{run_id}",
            "A run: metadata, method as run, log, errors, contributors, UOD",
            "viewer",
            response=RunDetail,
            errors=(403, 404),
            tags=TAGS,
        ),
        run_detail,
    )
    routes.add(
        app,
        Operation(
            "GET",
            "/api/runs/{run_id}/plot",
            "Plot data of a run, decimated",
            "viewer",
            query=PlotQuery,
            response=PlotData,
            errors=(403, 404, 422),
            tags=TAGS,
        ),
        run_plot,
    )
    routes.add(
        app,
        Operation(
            "GET",
            "/api/runs/{run_id}/csv",
            "The run as CSV (streamed): # metadata "
            "lines, then UTC timestamp, Run Time and one column per tag",
            "viewer",
            response=Stream("text/csv"),
            errors=(403, 404),
            tags=TAGS,
        ),
        run_csv,
    )
    routes.add(
        app,
        Operation(
            "GET",
            "/api/runs/{run_id}/xlsx",
            "The run as an Excel workbook: sheet Data (UTC date-time, Run Time, one column "
            "per tag, typed cells) and sheet Run (metadata); 422 when longer than a sheet holds",
            "viewer",
            response=Stream(XLSX_MEDIA_TYPE, charset=None),
            errors=(403, 404, 422),
            tags=TAGS,
        ),
        run_xlsx,
    )
