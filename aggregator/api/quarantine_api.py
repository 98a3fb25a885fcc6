"""Quarantined engine messages, for admins: list them, read one whole, replay one after a fix.

A message lands in quarantine when it was received but failed to apply (aggregator/store/
quarantine.py says why it is still acknowledged). Replaying runs it through the normal ingest
handlers on the writer thread; each replay is audited, whatever its outcome."""

from __future__ import annotations

import json

from aiohttp import web
from pydantic import BaseModel, Field, JsonValue

from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.schemas import Query
from aggregator.api.service import ctx_of, record
from aggregator.context import AppContext
from aggregator.store import BatchResult, Quarantined

MAX_ID = 2**62


class QuarantineQuery(Query):
    unit: str | None = Field(default=None, max_length=256, description="only this unit's")
    cursor: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=50, ge=1, le=500)


class QuarantineEntry(BaseModel):
    id: int
    unit_id: str
    seq: int
    type: str
    received: float
    error: str
    attempts: int = Field(description="replays that failed as well")


class QuarantinePage(BaseModel):
    items: list[QuarantineEntry]
    next: int | None = Field(description="cursor of the next (older) page, null at the end")
    total: int = Field(description="quarantined messages in all (of the unit, if one is given)")


class QuarantinedMessageView(QuarantineEntry):
    message: JsonValue = Field(description="the message as received, whole")


class QuarantineReplay(BaseModel):
    id: int
    unit_id: str
    seq: int
    type: str
    outcome: str = Field(
        description="applied: stored and removed from quarantine; superseded: a newer message "
        "of the same state kind was stored since, so it was removed without being applied"
    )


def _view(entry: Quarantined) -> QuarantineEntry:
    return QuarantineEntry(
        id=entry.id,
        unit_id=entry.engine_id,
        seq=entry.seq,
        type=entry.kind,
        received=entry.received,
        error=entry.error,
        attempts=entry.attempts,
    )


def _qid(call: Call[None, None]) -> int:
    text = call.path("id")
    qid = int(text) if text.isdigit() and len(text) < 19 else 0
    if not 1 <= qid <= MAX_ID:
        raise ApiError(404, f"no quarantined message with id {text[:40]!r}", "id")
    return qid


async def quarantine_page(call: Call[None, QuarantineQuery]) -> QuarantinePage:
    ctx = ctx_of(call.app)
    query = call.query
    entries, following, total = await ctx.read(
        lambda: ctx.storage.quarantine.page(
            engine_id=query.unit, before=query.cursor, limit=query.limit
        )
    )
    return QuarantinePage(items=[_view(e) for e in entries], next=following, total=total)


async def quarantined_message(call: Call[None, None]) -> QuarantinedMessageView:
    ctx = ctx_of(call.app)
    qid = _qid(call)
    found = await ctx.read(ctx.storage.quarantine.entry, qid)
    if found is None:
        raise ApiError(404, f"no quarantined message with id {qid}", "id")
    entry, text = found
    return QuarantinedMessageView(**_view(entry).model_dump(), message=json.loads(text))


def _publish(ctx: AppContext, result: BatchResult) -> None:
    """What the replay changed, to the live side (as the writer does for a batch)."""
    for error in result.errors:
        ctx.live.hub.publish(f"unit/{error.engine_id}/errors", {"entries": [error.as_json()]})
    for engine_id in dict.fromkeys(e for e, _ in result.runs_opened + result.runs_closed):
        ctx.live.publish_units(engine_id)


async def replay(call: Call[None, None]) -> QuarantineReplay:
    admin = call.need_user()
    ctx = ctx_of(call.app)
    qid = _qid(call)
    done = await ctx.writer.call(ctx.storage.replay_quarantined, qid, admin.name)
    if done is None:
        raise ApiError(404, f"no quarantined message with id {qid}", "id")
    entry = done.entry
    _publish(ctx, done.result)
    target: dict[str, JsonValue] = {"id": qid, "seq": entry.seq, "type": entry.kind}
    if done.outcome == "failed":
        problem = ApiError(
            409, f"replaying quarantined message #{qid} failed again, it stays: {done.error}"
        )
        problem.audited = True  # recorded here, with the target
        await record(
            call.app,
            admin,
            "quarantine replay",
            unit_id=entry.engine_id,
            new={**target, "result": problem.error},
        )
        raise problem
    await record(
        call.app,
        admin,
        "quarantine replay",
        unit_id=entry.engine_id,
        new={**target, "result": done.outcome},
    )
    return QuarantineReplay(
        id=qid, unit_id=entry.engine_id, seq=entry.seq, type=entry.kind, outcome=done.outcome
    )


def setup(app: web.Application, routes: ApiRoutes) -> None:
    tags = ("admin",)
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET",
                    "/api/quarantine",
                    "Engine messages that failed to apply, newest first",
                    "admin",
                    query=QuarantineQuery,
                    response=QuarantinePage,
                    tags=tags,
                ),
                quarantine_page,
            ),
            (
                Operation(
                    "GET",
                    "/api/quarantine/{id}",
                    "One quarantined message, whole",
                    "admin",
                    response=QuarantinedMessageView,
                    errors=(404,),
                    tags=tags,
                ),
                quarantined_message,
            ),
            (
                Operation(
                    "POST",
                    "/api/quarantine/{id}/replay",
                    "Apply a quarantined message again (after a fix)",
                    "admin",
                    response=QuarantineReplay,
                    errors=(404, 409),
                    tags=tags,
                    action="quarantine replay",
                ),
                replay,
            ),
        ],
    )
