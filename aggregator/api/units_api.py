"""`/api/units/...`: the units, their live state, control, method, run log, errors and plot."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web

from aggregator.api import actions
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.plot import UnknownTags, build_plot, parse_tag_list
from aggregator.api.schemas import (
    CommandOutcome,
    ControlRequest,
    Findings,
    InjectRequest,
    MethodCheck,
    MethodPut,
    MethodSaved,
    MethodView,
    PlotData,
    PlotQuery,
    RunLogView,
    UnitDetail,
    UnitSummary,
)
from aggregator.api.service import (
    ctx_of,
    current_method,
    require_unit,
    tag_states,
    unit_summary,
    uod_of,
    visible_units,
)
from aggregator.context import AppContext
from aggregator.store.rows import RunRow
from aggregator.store.tables import T_ERRORS
from protocol import ErrorLogEntry, RunLogLine

LATEST_ERRORS = 200

TAGS = ("units",)


async def list_units(call: Call[None, None]) -> list[UnitSummary]:
    return visible_units(call.app, call.need_user())


async def unit_detail(call: Call[None, None]) -> UnitDetail:
    live = require_unit(call.app, call.need_user(), call.path("unit_id"))
    summary = unit_summary(call.app, live)
    return UnitDetail(
        **summary.model_dump(), uod=uod_of(call.app, live.engine_id), tags=tag_states(live)
    )


async def control(call: Call[ControlRequest, None]) -> CommandOutcome:
    return await actions.control(call.app, call.need_user(), call.path("unit_id"), call.body.action)


async def inject(call: Call[InjectRequest, None]) -> CommandOutcome:
    return await actions.inject(call.app, call.need_user(), call.path("unit_id"), call.body.pcode)


async def get_method(call: Call[None, None]) -> MethodView:
    unit_id = call.path("unit_id")
    require_unit(call.app, call.need_user(), unit_id)
    view = await current_method(call.app, unit_id)
    if view is None:
        return MethodView(version=0, text="", lines=[])
    return view


async def put_method(call: Call[MethodPut, None]) -> MethodSaved:
    body = call.body
    return await actions.set_method(
        call.app,
        call.need_user(),
        call.path("unit_id"),
        body.text,
        body.expected_version,
        body.line_ids,
    )


async def check_method(call: Call[MethodCheck, None]) -> Findings:
    return await actions.check_method(
        call.app, call.need_user(), call.path("unit_id"), call.body.text
    )


def _current_or_latest_run(ctx: AppContext, unit_id: str, run_id: str | None) -> RunRow | None:
    if run_id is not None:
        run = ctx.storage.run_by_id(run_id)
        if run is not None:
            return run
    rows = ctx.storage.list_runs(unit_id, None, 1)
    return ctx.storage.run_by_id(rows[0].run_id) if rows else None


async def runlog(call: Call[None, None]) -> RunLogView:
    unit_id = call.path("unit_id")
    live = require_unit(call.app, call.need_user(), unit_id)
    ctx = ctx_of(call.app)
    run = await ctx.read(_current_or_latest_run, ctx, unit_id, live.run_id)
    if run is None:
        return RunLogView(run_id=None, lines=[])
    lines = await ctx.read(ctx.storage.run_log, run.pk)
    return RunLogView(run_id=run.run_id, lines=[RunLogLine.model_validate(line) for line in lines])


async def cancel_line(call: Call[None, None]) -> CommandOutcome:
    return await actions.line_action(
        call.app, call.need_user(), call.path("unit_id"), call.path("line_id"), "cancel"
    )


async def force_line(call: Call[None, None]) -> CommandOutcome:
    return await actions.line_action(
        call.app, call.need_user(), call.path("unit_id"), call.path("line_id"), "force"
    )


def _errors(ctx: AppContext, unit_id: str, run_id: str | None) -> list[ErrorLogEntry]:
    with ctx.storage.engine.connect() as conn:
        query = sa.select(T_ERRORS).where(T_ERRORS.c.engine_id == unit_id)
        run = ctx.storage.run_by_id(run_id) if run_id is not None else None
        if run is not None:
            query = query.where(T_ERRORS.c.run_pk == run.pk).order_by(T_ERRORS.c.id)
            rows = conn.execute(query).all()
        else:
            rows = list(
                reversed(
                    conn.execute(query.order_by(T_ERRORS.c.id.desc()).limit(LATEST_ERRORS)).all()
                )
            )
    entries: list[ErrorLogEntry] = []
    for row in rows:
        level = row.level if row.level in ("info", "warning", "error") else "error"
        entries.append(
            ErrorLogEntry(time=row.time, level=level, message=row.message, source=row.source)
        )
    return entries


async def errors(call: Call[None, None]) -> list[ErrorLogEntry]:
    unit_id = call.path("unit_id")
    live = require_unit(call.app, call.need_user(), unit_id)
    ctx = ctx_of(call.app)
    return await ctx.read(_errors, ctx, unit_id, live.run_id)


async def live_plot(call: Call[None, PlotQuery]) -> PlotData:
    unit_id = call.path("unit_id")
    live = require_unit(call.app, call.need_user(), unit_id)
    ctx = ctx_of(call.app)
    run = await ctx.read(ctx.storage.run_by_id, live.run_id) if live.run_id else None
    if run is None:
        return PlotData(run_id=None, series=[])
    return await plot_of_run(ctx, run, call.query)


async def plot_of_run(ctx: AppContext, run: RunRow, query: PlotQuery) -> PlotData:
    if query.start is not None and query.end is not None and query.end < query.start:
        raise ApiError(400, "end is before start", "end")
    try:
        return await ctx.read(
            build_plot,
            ctx.storage,
            run,
            parse_tag_list(query.tags),
            query.start,
            query.end,
            query.points,
        )
    except UnknownTags as exc:
        raise ApiError(
            422, f"unknown tag(s) {exc}: not in the unit's UOD for this run", "tags"
        ) from None


def setup(app: web.Application, routes: ApiRoutes) -> None:
    unit = "/api/units/{unit_id}"
    common = (403, 404)
    engine = (403, 404, 409, 503)
    table: list[tuple[Operation, Any]] = [
        (
            Operation(
                "GET",
                "/api/units",
                "List the units you may see",
                "viewer",
                response=list[UnitSummary],
                tags=TAGS,
            ),
            list_units,
        ),
        (
            Operation(
                "GET",
                unit,
                "One unit: state, UOD, tags",
                "viewer",
                response=UnitDetail,
                errors=common,
                tags=TAGS,
            ),
            unit_detail,
        ),
        (
            Operation(
                "POST",
                f"{unit}/control",
                "Start, Stop, Pause, Unpause, Hold, Unhold, Restart",
                "operator",
                body=ControlRequest,
                response=CommandOutcome,
                errors=engine,
                tags=TAGS,
                action="control",
            ),
            control,
        ),
        (
            Operation(
                "POST",
                f"{unit}/inject",
                "Inject P-code",
                "operator",
                body=InjectRequest,
                response=CommandOutcome,
                errors=engine,
                tags=TAGS,
                action="inject",
            ),
            inject,
        ),
        (
            Operation(
                "GET",
                f"{unit}/method",
                "The unit's method with line states",
                "viewer",
                response=MethodView,
                errors=common,
                tags=TAGS,
            ),
            get_method,
        ),
        (
            Operation(
                "PUT",
                f"{unit}/method",
                "Save a method edit (expected_version guards it)",
                "operator",
                body=MethodPut,
                response=MethodSaved,
                errors=engine,
                tags=TAGS,
                action="method",
            ),
            put_method,
        ),
        (
            Operation(
                "POST",
                f"{unit}/method/check",
                "Analyze a method text; nothing saved",
                "viewer",
                body=MethodCheck,
                response=Findings,
                errors=engine,
                tags=TAGS,
                action="method check",
            ),
            check_method,
        ),
        (
            Operation(
                "GET",
                f"{unit}/runlog",
                "Run log of the current (or latest) run",
                "viewer",
                response=RunLogView,
                errors=common,
                tags=TAGS,
            ),
            runlog,
        ),
        (
            Operation(
                "POST",
                f"{unit}/runlog/{{line_id}}/cancel",
                "Cancel a run-log line",
                "operator",
                response=CommandOutcome,
                errors=engine,
                tags=TAGS,
                action="cancel",
            ),
            cancel_line,
        ),
        (
            Operation(
                "POST",
                f"{unit}/runlog/{{line_id}}/force",
                "Force a run-log line",
                "operator",
                response=CommandOutcome,
                errors=engine,
                tags=TAGS,
                action="force",
            ),
            force_line,
        ),
        (
            Operation(
                "GET",
                f"{unit}/errors",
                "Error log of the current run, or the latest",
                "viewer",
                response=list[ErrorLogEntry],
                errors=common,
                tags=TAGS,
            ),
            errors,
        ),
        (
            Operation(
                "GET",
                f"{unit}/plot",
                "Plot data of the live run, decimated",
                "viewer",
                query=PlotQuery,
                response=PlotData,
                errors=(*common, 422),
                tags=TAGS,
            ),
            live_plot,
        ),
    ]
    for operation, handler in table:
        routes.add(app, operation, handler)
