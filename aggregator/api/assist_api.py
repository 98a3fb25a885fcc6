"""Help with a unit's method: completions for scripts and other editors, and fix and resume.

`GET /api/units/{id}/method/completions?line=&col=&text=` answers what the web editor offers at
the cursor (completions.py; without `text`, the unit's current method), `POST` the same with the
text in a JSON body for methods too long for a URL. `POST .../runlog/{line_id}/resume` and
`.../skip` act on a method line that failed during a run (protocol 1.1 `ResumeLine`), audited like
every other action, with the method version the operator resumed from.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from aggregator.api.actions import audited
from aggregator.api.completions import complete
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.roles import ApiUser
from aggregator.api.schemas import CommandOutcome, Query, Request
from aggregator.api.service import (
    current_method,
    engine_request,
    require_control,
    require_engine_protocol,
    require_unit,
    uod_of,
)
from protocol import ResumeLine

TAGS = ("units",)
RESUME_SINCE = (1, 1)
"""The protocol version that brought ResumeLine: older engines would never answer it."""

Mode = Literal["method", "inject"]


class CompletionQuery(Query):
    line: int = Field(ge=1, le=1_000_000, description="1-based line of the cursor")
    col: int = Field(ge=1, le=100_000, description="1-based column of the cursor (1: line start)")
    text: str | None = Field(
        default=None, max_length=6000, description="the method text; absent: the current method"
    )
    mode: Mode = Field(
        default="method", description="inject: code for the manual-command box (Unpause offered)"
    )


class CompletionRequest(Request):
    line: int = Field(ge=1, le=1_000_000)
    col: int = Field(ge=1, le=100_000)
    text: str = Field(max_length=1_000_000)
    mode: Mode = "method"


class CompletionItem(BaseModel):
    label: str
    kind: Literal["instruction", "command", "tag", "operator", "value", "unit", "macro", "block"]
    detail: str = Field(description="the argument hint, unit or value kind")
    apply: str = Field(description="the text to insert in place of from_col..to_col")


class CompletionsView(BaseModel):
    from_col: int = Field(description="1-based column where the replaced text starts")
    to_col: int = Field(description="1-based column where it ends (the cursor)")
    items: list[CompletionItem] = Field(description="best first")


async def _completions(
    call: Call[Any, Any], text: str | None, line: int, col: int, mode: Mode
) -> CompletionsView:
    unit_id = call.path("unit_id")
    require_unit(call.app, call.need_user(), unit_id)
    uod = uod_of(call.app, unit_id)
    if uod is None:
        raise ApiError(404, f"unit {unit_id!r} has not described itself yet (no UOD)")
    if text is None:
        view = await current_method(call.app, unit_id)
        text = view.text if view is not None else ""
    found = complete(uod, text, line, col, mode)
    return CompletionsView(
        from_col=found.start,
        to_col=found.end,
        items=[
            CompletionItem(label=i.label, kind=i.kind, detail=i.detail, apply=i.apply)
            for i in found.items
        ],
    )


async def completions_get(call: Call[None, CompletionQuery]) -> CompletionsView:
    q = call.query
    return await _completions(call, q.text, q.line, q.col, q.mode)


async def completions_post(call: Call[CompletionRequest, None]) -> CompletionsView:
    b = call.body
    return await _completions(call, b.text, b.line, b.col, b.mode)


async def resume_line(
    app: web.Application, user: ApiUser, unit_id: str, run_log_id: str, *, skip: bool
) -> CommandOutcome:
    live = require_control(app, user, unit_id)
    await require_engine_protocol(
        app,
        unit_id,
        RESUME_SINCE,
        "Resume and Skip need 1.1 or later: upgrade the engine (Unpause retries a line that "
        "failed at once)",
    )
    method = await current_method(app, unit_id)
    action = "skip" if skip else "resume"
    entry: dict[str, Any] = {
        "line": run_log_id,
        "method_version": method.version if method else None,
    }
    async with audited(app, user, action, unit_id, lambda: live.run_id, entry):
        result = await engine_request(
            app,
            unit_id,
            lambda cid: ResumeLine(id=cid, user=user.name, run_log_id=run_log_id, skip=skip),
        )
    return CommandOutcome(data=result.data)


async def resume(call: Call[None, None]) -> CommandOutcome:
    return await resume_line(
        call.app, call.need_user(), call.path("unit_id"), call.path("line_id"), skip=False
    )


async def skip(call: Call[None, None]) -> CommandOutcome:
    return await resume_line(
        call.app, call.need_user(), call.path("unit_id"), call.path("line_id"), skip=True
    )


def setup(app: web.Application, routes: ApiRoutes) -> None:
    unit = "/api/units/{unit_id}"
    engine = (403, 404, 409, 503)
    table: list[tuple[Operation, Any]] = [
        (
            Operation(
                "GET",
                f"{unit}/method/completions",
                "What the method editor offers at a cursor (names, tags, units, values)",
                "viewer",
                query=CompletionQuery,
                response=CompletionsView,
                errors=(400, 403, 404),
                tags=TAGS,
                description="Computed from the unit's UOD description and the text, as the web "
                "editor does; `text` absent means the unit's current method.",
            ),
            completions_get,
        ),
        (
            Operation(
                "POST",
                f"{unit}/method/completions",
                "The same, with the text in the body (for long methods)",
                "viewer",
                body=CompletionRequest,
                response=CompletionsView,
                errors=(400, 403, 404),
                tags=TAGS,
                action="method completions",
            ),
            completions_post,
        ),
        (
            Operation(
                "POST",
                f"{unit}/runlog/{{line_id}}/resume",
                "Resume from a failed method line: run it again with its current text",
                "operator",
                response=CommandOutcome,
                errors=engine,
                tags=TAGS,
                action="resume",
            ),
            resume,
        ),
        (
            Operation(
                "POST",
                f"{unit}/runlog/{{line_id}}/skip",
                "Skip a failed method line and go on after it",
                "operator",
                response=CommandOutcome,
                errors=engine,
                tags=TAGS,
                action="skip",
            ),
            skip,
        ),
    ]
    routes.add_all(app, table)
