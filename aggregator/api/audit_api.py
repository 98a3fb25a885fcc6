"""`/api/audit/search` and `/api/audit/export.csv` (admins): the audit trail filtered by user,
unit, run, action and time, for the Audit page and its CSV download (issue 16 item 5)."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from aiohttp import web
from pydantic import Field

from aggregator.api.openapi import ApiRoutes, Call, Operation, Stream, Streamed
from aggregator.api.schemas import AuditEntryView, AuditPage, Query
from aggregator.api.service import ctx_of
from aggregator.audit_export import AuditFilter, batch_after, csv_chunks, page

TAGS = ("admin",)


class AuditSearch(Query):
    user: str | None = Field(default=None, max_length=128)
    unit_id: str | None = Field(default=None, max_length=256)
    run_id: str | None = Field(default=None, max_length=256)
    action: str | None = Field(default=None, max_length=64)
    since: float | None = Field(default=None, description="Unix seconds, inclusive")
    until: float | None = Field(default=None, description="Unix seconds, exclusive")
    cursor: int | None = Field(default=None, ge=1, le=2**62)
    limit: int = Field(default=100, ge=1, le=1000)

    def filter(self) -> AuditFilter:
        return AuditFilter(
            since=self.since,
            until=self.until,
            user=self.user or None,
            unit_id=self.unit_id or None,
            run_id=self.run_id or None,
            action=self.action or None,
        )


async def search(call: Call[None, AuditSearch]) -> AuditPage:
    ctx = ctx_of(call.app)
    q = call.query
    records, following = await ctx.read(page, ctx.storage.engine, q.filter(), q.cursor, q.limit)
    return AuditPage(
        items=[AuditEntryView.model_validate(r, from_attributes=True) for r in records],
        next=following,
    )


async def export_csv(call: Call[None, AuditSearch]) -> Streamed:
    ctx = ctx_of(call.app)
    where = call.query.filter()

    async def body() -> AsyncGenerator[bytes, None]:
        after, header = 0, True
        while True:
            records = await ctx.read(batch_after, ctx.storage.engine, where, after, 1000)
            if not records and not header:
                return
            text = "".join(csv_chunks(records))
            if not header:
                text = text.split("\r\n", 1)[1]  # the header once
            yield text.encode()
            if not records:
                return
            after, header = records[-1].id, False

    return Streamed(body(), filename="setpoint-audit.csv")


def setup(app: web.Application, routes: ApiRoutes) -> None:
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET",
                    "/api/audit/search",
                    "The audit trail filtered by user, unit, run, action and time, newest first",
                    "admin",
                    query=AuditSearch,
                    response=AuditPage,
                    tags=TAGS,
                ),
                search,
            ),
            (
                Operation(
                    "GET",
                    "/api/audit/export.csv",
                    "The filtered audit trail as CSV, oldest first (cursor and limit ignored)",
                    "admin",
                    query=AuditSearch,
                    response=Stream("text/csv"),
                    tags=TAGS,
                ),
                export_csv,
            ),
        ],
    )
