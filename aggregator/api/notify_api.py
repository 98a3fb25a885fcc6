"""Notifications over HTTP: each person's choices and browser push subscriptions, each unit's
escalation list (admins), and the notifications that could not be delivered (admins).

Also builds the notification service (aggregator/notify) and gives it this API's rules: who may
see which unit, the units' UODs, the alarm book."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, JsonValue

from aggregator.api.alarm_book import AlarmBook
from aggregator.api.alarms_api import ALARM_BOOK_KEY, ALARM_QUERIES_KEY
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.schemas import Query
from aggregator.api.service import ctx_of, record, require_unit, state_of, unit_visible, uod_of
from aggregator.live import no_tag_values
from aggregator.notify.config import NotifyConfig
from aggregator.notify.prefs import Event, NotificationPrefs
from aggregator.notify.service import Hooks, NotificationService
from aggregator.store.notifications import NotificationStore

NOTIFY_CONFIG_KEY = web.AppKey("setpoint_notify_config", NotifyConfig)
NOTIFY_KEY = web.AppKey("setpoint_notifications", NotificationService)
TAGS = ("notifications",)
MAX_ID = 2**62


class NotificationSettings(NotificationPrefs):
    email_available: bool = Field(
        default=False, description="this server sends e-mail (an admin set --smtp-url)"
    )
    vapid_public_key: str = Field(
        default="", description="applicationServerKey for PushManager.subscribe"
    )
    push_subscriptions: int = Field(default=0, description="browsers subscribed for web push")


class PushKeys(BaseModel):
    p256dh: str = Field(min_length=80, max_length=100, pattern=r"^[A-Za-z0-9_-]+=*$")
    auth: str = Field(min_length=16, max_length=30, pattern=r"^[A-Za-z0-9_-]+=*$")


class PushSubscriptionBody(BaseModel):
    """What PushSubscription.toJSON() gives in the browser."""

    endpoint: str = Field(min_length=10, max_length=2048, pattern=r"^https?://")
    keys: PushKeys


class EndpointQuery(Query):
    endpoint: str = Field(min_length=1, max_length=2048)


class FailureQuery(Query):
    cursor: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int = Field(default=50, ge=1, le=500)


class FailureEntry(BaseModel):
    id: int
    time: float
    channel: str = Field(description="email, web_push, or escalation (nobody to reach)")
    user: str
    recipient: str
    subject: str
    error: str
    attempts: int


class FailurePage(BaseModel):
    items: list[FailureEntry]
    next: int | None
    total: int
    queued: int = Field(description="notifications waiting to be sent or retried now")
    email: str = Field(description="where e-mail goes (never the password), or 'off'")


class Escalation(BaseModel):
    users: list[str] = Field(
        max_length=50,
        description="user names, in order: step 1 is notified after the alarm's "
        "escalation_minutes unacknowledged, step 2 after twice that, ...",
    )


class EscalationView(Escalation):
    updated: float = 0.0
    updated_by: str = ""


def service_of(app: web.Application) -> NotificationService:
    return app[NOTIFY_KEY]


async def _settings(app: web.Application, user_id: int, prefs: NotificationPrefs) -> Any:
    svc = service_of(app)
    rows = await ctx_of(app).read(svc.store.push_subscriptions, user_id)
    return NotificationSettings(
        **prefs.model_dump(),
        email_available=svc.mailer is not None,
        vapid_public_key=svc.vapid.public_b64,
        push_subscriptions=len(rows),
    )


async def get_prefs(call: Call[None, None]) -> NotificationSettings:
    user = call.need_user()
    store = service_of(call.app).store
    text = await ctx_of(call.app).read(store.prefs, user.id)
    prefs = NotificationPrefs.model_validate_json(text) if text else NotificationPrefs()
    result: NotificationSettings = await _settings(call.app, user.id, prefs)
    return result


async def put_prefs(call: Call[NotificationPrefs, None]) -> NotificationSettings:
    user = call.need_user()
    prefs: NotificationPrefs = call.body
    svc = service_of(call.app)
    if prefs.email_enabled and not prefs.email:
        raise ApiError(422, "e-mail notifications need an address in email", "email")
    if prefs.email_enabled and svc.mailer is None:
        raise ApiError(
            422,
            "this server sends no e-mail: an admin starts it with --smtp-url and --smtp-from",
            "email_enabled",
        )
    for n, rule in enumerate(prefs.rules):
        if rule.unit_id is not None:
            try:
                require_unit(call.app, user, rule.unit_id)
            except ApiError as problem:
                raise ApiError(
                    404, f"no unit with id {rule.unit_id!r}", f"rules.{n}.unit_id"
                ) from (problem if problem.status == 404 else None)
    await ctx_of(call.app).writer.call(svc.store.save_prefs, user.id, prefs.model_dump_json())
    await svc.reload_person(user.name)
    await record(call.app, user, "notification settings", new=prefs.model_dump(mode="json"))
    result: NotificationSettings = await _settings(call.app, user.id, prefs)
    return result


async def add_push(call: Call[PushSubscriptionBody, None]) -> None:
    user = call.need_user()
    svc = service_of(call.app)
    body = call.body
    await ctx_of(call.app).writer.call(
        svc.store.add_push, user.id, body.endpoint, body.keys.p256dh, body.keys.auth
    )
    await svc.reload_person(user.name)


async def remove_push(call: Call[None, EndpointQuery]) -> None:
    user = call.need_user()
    svc = service_of(call.app)
    removed = await ctx_of(call.app).writer.call(
        svc.store.remove_push, call.query.endpoint, user.id
    )
    if not removed:
        raise ApiError(404, "no such push subscription of yours", "endpoint")
    await svc.reload_person(user.name)


async def test_notification(call: Call[None, None]) -> dict[str, int]:
    """Send a test message through the caller's enabled channels (the Settings page)."""
    user = call.need_user()
    svc = service_of(call.app)
    await svc.reload_person(user.name)
    known = svc.known(user.name)
    event = Event("notify", "", "Test notification", f"Hello {user.name}: notifications work.")
    queued = svc.deliver(known, event) if known is not None else 0
    if not queued:
        raise ApiError(409, "no channel is enabled: turn on e-mail or web push first")
    return {"queued": queued}


async def failures(call: Call[None, FailureQuery]) -> FailurePage:
    svc = service_of(call.app)
    q = call.query
    items, following, total = await ctx_of(call.app).read(svc.store.failures, q.cursor, q.limit)
    return FailurePage(
        items=[FailureEntry.model_validate(i, from_attributes=True) for i in items],
        next=following,
        total=total,
        queued=svc.dispatcher.waiting,
        email=svc.mailer.config.describe() if svc.mailer else "off",
    )


async def get_escalation(call: Call[None, None]) -> EscalationView:
    unit = call.path("unit_id")
    require_unit(call.app, call.need_user(), unit)
    users, updated, by = await ctx_of(call.app).read(service_of(call.app).store.escalation, unit)
    return EscalationView(users=users, updated=updated, updated_by=by)


async def put_escalation(call: Call[Escalation, None]) -> EscalationView:
    admin = call.need_user()
    unit = call.path("unit_id")
    require_unit(call.app, admin, unit)
    svc = service_of(call.app)
    ctx = ctx_of(call.app)
    for n, name in enumerate(call.body.users):
        if await ctx.read(ctx.storage.user_by_name, name) is None:
            raise ApiError(422, f"no user named {name!r}", f"users.{n}")
    old, _, _ = await ctx.read(svc.store.escalation, unit)
    await ctx.writer.call(svc.store.set_escalation, unit, call.body.users, admin.name)
    await svc.load_escalation(unit)
    await record(
        call.app,
        admin,
        "escalation list",
        unit_id=unit,
        old={"users": list[JsonValue](old)},
        new={"users": list[JsonValue](call.body.users)},
    )
    users, updated, by = await ctx.read(svc.store.escalation, unit)
    return EscalationView(users=users, updated=updated, updated_by=by)


# --- the service --------------------------------------------------------------------------------


def _mark_escalated(app: web.Application, book: AlarmBook) -> Any:
    def mark(unit: str, name: str, since: float, step: int) -> None:
        if book.mark_escalated(unit, name, since, step):
            service_of(app).spawn(
                ctx_of(app).writer.call(
                    app[ALARM_QUERIES_KEY].set_escalated, unit, name, since, step
                )
            )

    return mark


async def _start(app: web.Application) -> None:
    svc = service_of(app)
    await svc.start()
    for unit in list(ctx_of(app).live.engines):
        await svc.load_escalation(unit)


async def _stop(app: web.Application) -> None:
    await service_of(app).stop()


def setup(app: web.Application, routes: ApiRoutes) -> None:
    ctx = ctx_of(app)
    config = app.get(NOTIFY_CONFIG_KEY) or NotifyConfig()
    book = app[ALARM_BOOK_KEY]
    hooks = Hooks(
        read=ctx.read,
        write=ctx.writer.call,
        clock=lambda: state_of(app).clock(),
        visible=lambda role, unit: unit_visible(app, role, unit),
        uod=lambda unit: uod_of(app, unit),
        alarms=book.states,
        mark_escalated=_mark_escalated(app, book),
    )
    svc = NotificationService(config, NotificationStore(ctx.storage.engine, hooks.clock), hooks)
    app[NOTIFY_KEY] = svc
    ctx.hub.subscribe(svc.on_live, no_tag_values)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    me = "/api/me/notifications"
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET",
                    me,
                    "Your notification settings",
                    "viewer",
                    response=NotificationSettings,
                    tags=TAGS,
                ),
                get_prefs,
            ),
            (
                Operation(
                    "PUT",
                    me,
                    "Choose which events reach you, and how",
                    "viewer",
                    body=NotificationPrefs,
                    response=NotificationSettings,
                    errors=(404, 422),
                    tags=TAGS,
                    action="notification settings",
                ),
                put_prefs,
            ),
            (
                Operation(
                    "POST",
                    f"{me}/test",
                    "Send yourself a test notification",
                    "viewer",
                    response=dict[str, int],
                    errors=(409,),
                    tags=TAGS,
                ),
                test_notification,
            ),
            (
                Operation(
                    "POST",
                    "/api/me/push-subscriptions",
                    "Subscribe this browser for web push (PushSubscription.toJSON())",
                    "viewer",
                    body=PushSubscriptionBody,
                    status=204,
                    tags=TAGS,
                ),
                add_push,
            ),
            (
                Operation(
                    "DELETE",
                    "/api/me/push-subscriptions",
                    "Unsubscribe a browser",
                    "viewer",
                    query=EndpointQuery,
                    status=204,
                    errors=(404,),
                    tags=TAGS,
                ),
                remove_push,
            ),
            (
                Operation(
                    "GET",
                    "/api/notifications/failures",
                    "Notifications that could not be delivered, newest first",
                    "admin",
                    query=FailureQuery,
                    response=FailurePage,
                    tags=("admin", *TAGS),
                ),
                failures,
            ),
            (
                Operation(
                    "GET",
                    "/api/units/{unit_id}/escalation",
                    "Who is notified when the unit's high-priority alarm stays unacknowledged",
                    "viewer",
                    response=EscalationView,
                    errors=(403, 404),
                    tags=TAGS,
                ),
                get_escalation,
            ),
            (
                Operation(
                    "PUT",
                    "/api/units/{unit_id}/escalation",
                    "Set the unit's escalation list",
                    "admin",
                    body=Escalation,
                    response=EscalationView,
                    errors=(404, 422),
                    tags=("admin", *TAGS),
                    action="escalation list",
                ),
                put_escalation,
            ),
        ],
    )
