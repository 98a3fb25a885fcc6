"""`GET /api/runs/{id}/report` (HTML) and `/report.pdf`: a run's batch report (issue 16 item 4),
for anyone who may see the run."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from aiohttp import web

from aggregator.api.openapi import ApiRoutes, Call, Operation, Stream, Streamed
from aggregator.api.service import ctx_of, require_run, state_of
from aggregator.report.content import Report, gather
from aggregator.report.html import render_html

TAGS = ("runs",)


async def _report(call: Call[None, None]) -> Report:
    run = await require_run(call.app, call.need_user(), call.path("run_id"))
    ctx = ctx_of(call.app)
    return await ctx.read(gather, ctx, run, state_of(call.app).clock())


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)[:100] or "run"


async def report_html(call: Call[None, None]) -> Streamed:
    report = await _report(call)
    return Streamed(_once(render_html(report).encode()))


async def report_pdf(call: Call[None, None]) -> Streamed:
    from aggregator.report.pdf import render_pdf

    report = await _report(call)
    data = await ctx_of(call.app).read(render_pdf, report)
    return Streamed(_once(data), filename=f"batch-report-{_safe(report.run_id)}.pdf")


def setup(app: web.Application, routes: ApiRoutes) -> None:
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET",
                    "/api/runs/{run_id}/report",
                    "The run's batch report as HTML: metadata, method as run with its approval "
                    "signatures, operator actions, run log, marks, alarms, errors, plots, clock "
                    "offsets and every signature on the run",
                    "viewer",
                    response=Stream("text/html"),
                    errors=(403, 404),
                    tags=TAGS,
                ),
                report_html,
            ),
            (
                Operation(
                    "GET",
                    "/api/runs/{run_id}/report.pdf",
                    "The same batch report as PDF",
                    "viewer",
                    response=Stream("application/pdf", charset=None),
                    errors=(403, 404),
                    tags=TAGS,
                ),
                report_pdf,
            ),
        ],
    )
