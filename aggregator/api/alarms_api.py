"""Managed alarms over HTTP and /ws: the current alarms, the journal, and the operator's actions
(acknowledge, shelve, unshelve, out of service, return to service).

The engine owns every alarm's state (it evaluates them and works without us); an action is a
request to it (protocol `AlarmCommand`), audited whether it accepted or refused, and the
transition it makes comes back as a stored AlarmsUpdated. That stored change feeds the alarm
book and the /ws topics `unit/<id>/alarms` and `alarms` (see `AlarmBridge`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from aggregator.api.actions import audited
from aggregator.api.alarm_book import AlarmBook, AlarmView
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.roles import ApiUser
from aggregator.api.schemas import CommandOutcome, Query
from aggregator.api.service import (
    ctx_of,
    engine_request,
    require_control,
    require_engine_protocol,
    require_run,
    require_unit,
    state_of,
    unit_visible,
    uod_of,
)
from aggregator.live import no_tag_values
from aggregator.store.alarms import AlarmChange, AlarmQueries
from protocol import AlarmAction, AlarmCommand

ALARMS_SINCE = (1, 2)
"""The protocol version that brought AlarmCommand: older engines would never answer it."""
TAGS = ("alarms",)
ALARM_BOOK_KEY = web.AppKey("setpoint_alarm_book", AlarmBook)
ALARM_QUERIES_KEY = web.AppKey("setpoint_alarm_queries", AlarmQueries)
MAX_ID = 2**62


class CommentBody(BaseModel):
    comment: str | None = Field(default=None, max_length=1000)


class ShelveBody(BaseModel):
    minutes: float = Field(gt=0, le=7 * 24 * 60, allow_inf_nan=False)
    reason: str = Field(min_length=1, max_length=1000)


class ReasonBody(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class JournalQuery(Query):
    unit_id: str | None = Field(default=None, max_length=256)
    run_id: str | None = Field(default=None, max_length=256, description="only this run's")
    since: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    until: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cursor: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=100, ge=1, le=1000)


class JournalEntry(BaseModel):
    id: int
    unit_id: str
    run_id: str | None
    name: str
    state: str
    previous: str
    active: bool
    time: float
    cause: str
    user: str | None
    comment: str | None
    value: Any
    shelved_until: float | None
    priority: str
    message: str


class JournalPage(BaseModel):
    entries: list[JournalEntry] = Field(description="newest first")
    next: int | None = Field(description="cursor of the next (older) page, null at the end")


def book_of(app: web.Application) -> AlarmBook:
    return app[ALARM_BOOK_KEY]


# --- views ---------------------------------------------------------------------------------------


def unit_alarms(app: web.Application, unit_id: str) -> list[AlarmView]:
    return book_of(app).unit_views(unit_id, uod_of(app, unit_id))


def active_alarms(app: web.Application, user: ApiUser) -> list[AlarmView]:
    """Every alarm not in `normal`, of the units the user may see, highest priority first."""
    book = book_of(app)
    units = sorted({s.unit_id for s in book.states()})
    views = [
        view
        for unit in units
        if unit_visible(app, user.role, unit)
        for view in book.unit_views(unit, uod_of(app, unit))
        if view.state != "normal"
    ]
    rank = {"urgent": 0, "high": 1, "medium": 2, "low": 3}
    views.sort(key=lambda v: (rank.get(v.priority, 9), -(v.time or 0.0)))
    return views


async def list_unit_alarms(call: Call[None, None]) -> list[AlarmView]:
    unit = call.path("unit_id")
    require_unit(call.app, call.need_user(), unit)
    return unit_alarms(call.app, unit)


async def list_active(call: Call[None, None]) -> list[AlarmView]:
    return active_alarms(call.app, call.need_user())


async def journal(call: Call[None, JournalQuery]) -> JournalPage:
    user = call.need_user()
    app, q = call.app, call.query
    ctx = ctx_of(app)
    if q.unit_id is not None:
        require_unit(app, user, q.unit_id)
        units = [q.unit_id]
    else:
        units = [u for u in ctx.live.engines if unit_visible(app, user.role, u)]
    if q.run_id is not None:
        run = await require_run(app, user, q.run_id)
        units = [u for u in units if u == run.engine_id] if q.unit_id else [run.engine_id]
    entries, following = await ctx.read(
        lambda: app[ALARM_QUERIES_KEY].journal(
            units, since=q.since, until=q.until, run_id=q.run_id, before=q.cursor, limit=q.limit
        )
    )
    return JournalPage(
        entries=[JournalEntry.model_validate(e, from_attributes=True) for e in entries],
        next=following,
    )


# --- actions -------------------------------------------------------------------------------------


async def alarm_action(
    app: web.Application,
    user: ApiUser,
    unit_id: str,
    name: str,
    action: AlarmAction,
    *,
    comment: str | None = None,
    minutes: float | None = None,
    reason: str | None = None,
) -> CommandOutcome:
    """Check, forward to the engine, audit. Shared by HTTP (and any other front door)."""
    live = require_control(app, user, unit_id)
    view = book_of(app).view(unit_id, name, uod_of(app, unit_id))
    if view is None or not view.declared:
        raise ApiError(404, f"unit {unit_id!r} has no alarm {name!r}", "name")
    if action is AlarmAction.SHELVE and minutes is not None:
        if view.max_shelve_minutes <= 0:
            raise ApiError(409, f"alarm {name!r} cannot be shelved (its UOD says so)")
        if minutes > view.max_shelve_minutes:
            raise ApiError(
                422,
                f"alarm {name!r} may be shelved for at most {view.max_shelve_minutes:g} minutes",
                "minutes",
            )
    await require_engine_protocol(app, unit_id, ALARMS_SINCE, "alarm actions need 1.2 or later")
    new: dict[str, Any] = {"alarm": name, "state": view.state}
    for key, value in (("comment", comment), ("minutes", minutes), ("reason", reason)):
        if value is not None:
            new[key] = value
    async with audited(app, user, f"alarm {action.value}", unit_id, lambda: live.run_id, new):
        result = await engine_request(
            app,
            unit_id,
            lambda cid: AlarmCommand(
                id=cid,
                user=user.name,
                alarm=name,
                action=action,
                comment=comment,
                minutes=minutes,
                reason=reason,
            ),
        )
    return CommandOutcome(data=result.data)


def _acting(action: AlarmAction) -> Any:
    async def handler(call: Call[Any, None]) -> CommandOutcome:
        body = call.body
        return await alarm_action(
            call.app,
            call.need_user(),
            call.path("unit_id"),
            call.path("name"),
            action,
            comment=getattr(body, "comment", None),
            minutes=getattr(body, "minutes", None),
            reason=getattr(body, "reason", None),
        )

    return handler


# --- live ----------------------------------------------------------------------------------------


class AlarmBridge:
    """LiveHub subscriber: stored alarm changes into the book and onto /ws; alarms a newly
    registered UOD no longer declares out of both (and out of the store)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._tasks: set[asyncio.Future[Any]] = set()

    def __call__(self, topic: str, data: Any) -> None:
        if not topic.startswith("unit/"):
            return
        unit, _, kind = topic[len("unit/") :].rpartition("/")
        if kind in ("alarms_stored", "alarms_replica") and isinstance(data, AlarmChange):
            self._publish(unit, book_of(self.app).apply(data))
        elif kind == "registration" and isinstance(data, dict):
            declared = {a.get("name") for a in data.get("alarms", []) if isinstance(a, dict)}
            gone = [n for n in book_of(self.app).names(unit) if n not in declared]
            if gone:
                book_of(self.app).remove(unit, gone)
                self._publish(unit, gone)
                ctx = ctx_of(self.app)
                task = asyncio.ensure_future(
                    ctx.writer.call(self.app[ALARM_QUERIES_KEY].remove, unit, gone)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _publish(self, unit: str, names: list[str]) -> None:
        ws = state_of(self.app).ws
        uod = uod_of(self.app, unit)
        book = book_of(self.app)
        views = []
        for name in names:
            view = book.view(unit, name, uod)
            data = (
                view.model_dump(mode="json")
                if view is not None
                else {"unit_id": unit, "name": name, "state": "normal", "declared": False}
            )
            views.append(data)
        if views and ws.has_subscribers(f"unit/{unit}/alarms"):
            ws.publish(f"unit/{unit}/alarms", views)
        if ws.has_subscribers("alarms"):
            for data in views:
                ws.publish("alarms", data)


async def _load(app: web.Application) -> None:
    ctx = ctx_of(app)
    book_of(app).load(await ctx.read(app[ALARM_QUERIES_KEY].current))


def setup(app: web.Application, routes: ApiRoutes) -> None:
    ctx = ctx_of(app)
    app[ALARM_BOOK_KEY] = AlarmBook()
    app[ALARM_QUERIES_KEY] = AlarmQueries(ctx.storage.engine)
    ctx.hub.subscribe(AlarmBridge(app), no_tag_values)
    app.on_startup.append(_load)
    one = "/api/units/{unit_id}/alarms/{name}"
    engine = (403, 404, 409, 422, 503)
    acts: list[tuple[str, AlarmAction, type[BaseModel], str]] = [
        ("ack", AlarmAction.ACK, CommentBody, "Acknowledge an alarm (optional comment)"),
        ("shelve", AlarmAction.SHELVE, ShelveBody, "Shelve an alarm for some minutes, with why"),
        ("unshelve", AlarmAction.UNSHELVE, CommentBody, "Unshelve an alarm"),
        (
            "out-of-service",
            AlarmAction.OUT_OF_SERVICE,
            ReasonBody,
            "Take an alarm out of service, with why",
        ),
        ("return-to-service", AlarmAction.RETURN_TO_SERVICE, CommentBody, "Return it to service"),
    ]
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET",
                    "/api/alarms",
                    "Every alarm not in normal state, of the units you may see, highest first",
                    "viewer",
                    response=list[AlarmView],
                    tags=TAGS,
                ),
                list_active,
            ),
            (
                Operation(
                    "GET",
                    "/api/alarms/journal",
                    "Every alarm transition, newest first (time, user, comment)",
                    "viewer",
                    query=JournalQuery,
                    response=JournalPage,
                    errors=(403, 404),
                    tags=TAGS,
                ),
                journal,
            ),
            (
                Operation(
                    "GET",
                    "/api/units/{unit_id}/alarms",
                    "The unit's alarms: every one its UOD declares, with its state",
                    "viewer",
                    response=list[AlarmView],
                    errors=(403, 404),
                    tags=TAGS,
                ),
                list_unit_alarms,
            ),
            *[
                (
                    Operation(
                        "POST",
                        f"{one}/{path}",
                        summary,
                        "operator",
                        body=body,
                        response=CommandOutcome,
                        errors=engine,
                        tags=TAGS,
                        action=f"alarm {action.value}",
                    ),
                    _acting(action),
                )
                for path, action, body, summary in acts
            ],
        ],
    )
