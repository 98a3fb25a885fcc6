"""What /ws needs from the rest of the aggregator: users, snapshots and the actions, done by the
same functions as the HTTP API so both are checked and audited alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import JsonValue

from aggregator.api import actions, simulate_api
from aggregator.api.alarms_api import active_alarms, unit_alarms
from aggregator.api.auth import SESSION_COOKIE, authenticate, request_token
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ROUTES_KEY
from aggregator.api.origin import bearer_token_sent
from aggregator.api.plot import tag_stats
from aggregator.api.refusals import record_refusal
from aggregator.api.roles import ApiUser
from aggregator.api.service import (
    ctx_of,
    current_method,
    require_unit,
    state_of,
    tag_states,
    unit_summary,
    visible_units,
)
from aggregator.api.units_api import _current_or_latest_run, _errors
from aggregator.security import token_hash
from aggregator.ws.handler import ActionFailed, UpgradeRefused
from aggregator.ws.hub import Hub, TopicError, Viewer, parse_topic
from aggregator.ws.messages import (
    CommandAction,
    GetStatsAction,
    GetTagAction,
    RunAction,
    RunModelAction,
    StatusAction,
    StopAction,
    TaskAction,
)
from aggregator.ws.session_watch import SessionWatch
from aggregator.ws.tasks import Task
from protocol import ControlAction


class ApiWsBackend:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.sessions = SessionWatch(self._live_sessions, ctx_of(app).security)

    async def _live_sessions(self, sessions: set[str]) -> dict[str, str]:
        ctx = ctx_of(self.app)
        return await ctx.read(ctx.storage.live_sessions, sessions)

    @property
    def hub(self) -> Hub:
        return state_of(self.app).ws

    def now(self) -> float:
        return state_of(self.app).clock()

    async def authenticate(self, request: web.Request) -> Viewer | None:
        """A browser opens /ws with the session cookie from any site's page; the Origin of the
        upgrade says which (origin.py), so a cookie upgrade from elsewhere is refused (403,
        audited). Bearer tokens are not checked: no browser sends one on its own."""
        user = await authenticate(request)
        if user is None:
            return None
        if not bearer_token_sent(request) and SESSION_COOKIE in request.cookies:
            problem = self.app[ROUTES_KEY].guard.origin_problem(request)
            if problem is not None:
                error = ApiError(403, problem)
                await record_refusal(self.app, user, "ws connect", error, via="ws")
                raise UpgradeRefused(403, problem)
        token = request_token(request) or ""
        return Viewer(user.name, user.role, user.id, token_hash(token))

    async def subscribe_refused(self, viewer: Viewer, topic: str, reason: str) -> None:
        """The hub refuses a unit the viewer may not see as if it did not exist (it names no
        reason that would reveal it); the audit entry records it as a refusal all the same."""
        try:
            unit, _kind = parse_topic(topic)
        except TopicError:
            unit = None
        await record_refusal(
            self.app,
            self._user(viewer),
            "subscribe",
            ApiError(403 if unit in ctx_of(self.app).live.engines else 404, reason),
            unit_id=unit,
            target={"topic": topic},
            via="ws",
        )

    def _user(self, viewer: Viewer) -> ApiUser:
        return ApiUser(viewer.user_id, viewer.name, viewer.role)  # type: ignore[arg-type]

    async def snapshot(self, viewer: Viewer, unit_id: str | None, kind: str) -> Any:
        app = self.app
        user = self._user(viewer)
        if unit_id is None and kind == "alarms":
            return [v.model_dump(mode="json") for v in active_alarms(app, user)]
        if unit_id is None:
            return [u.model_dump(mode="json") for u in visible_units(app, user)]
        try:
            live = require_unit(app, user, unit_id)
        except ApiError as problem:
            if problem.status == 403:
                await record_refusal(
                    app,
                    user,
                    "subscribe",
                    problem,
                    unit_id=unit_id,
                    target={"topic": kind},
                    via="ws",
                )
            raise ActionFailed(problem.error) from None
        ctx = ctx_of(app)
        if kind == "tags":
            return [t.model_dump(mode="json") for t in tag_states(live)]
        if kind == "samples":
            return {"run_id": live.run_id, "samples": []}  # the history: the plot API
        if kind == "control":
            return unit_summary(app, live).model_dump(mode="json")
        if kind == "method":
            view = await current_method(app, unit_id)
            return None if view is None else view.model_dump(mode="json")
        if kind == "runlog":
            run = await ctx.read(_current_or_latest_run, ctx, unit_id, live.run_id)
            if run is None:
                return {"run_id": None, "lines": []}
            return {
                "run_id": run.run_id,
                "lines": await ctx.read(ctx.storage.run_log, run.pk),
            }
        if kind == "errors":
            entries = await ctx.read(_errors, ctx, unit_id, live.run_id)
            return [e.model_dump(mode="json") for e in entries]
        if kind == "watchers":
            return self.hub.watchers(unit_id)
        if kind == "alarms":
            return [v.model_dump(mode="json") for v in unit_alarms(app, unit_id)]
        raise ActionFailed(f"unknown topic kind {kind!r}")

    async def act(
        self, viewer: Viewer, action: TaskAction, task: Task, report: Callable[[], None]
    ) -> JsonValue:
        user = self._user(viewer)
        try:
            return await self._act(user, action, task, report)
        except ApiError as problem:
            if problem.status in (403, 409) and not problem.audited:
                unit = getattr(action, "unit", None)
                await record_refusal(
                    self.app,
                    user,
                    action.action,
                    problem,
                    unit_id=unit if isinstance(unit, str) else None,
                    via="ws",
                )
            raise ActionFailed(problem.error) from None

    async def _act(
        self, user: ApiUser, action: TaskAction, task: Task, report: Callable[[], None]
    ) -> JsonValue:
        app = self.app
        if isinstance(action, RunAction):
            if action.method is not None:
                task.total = 2
                view = await current_method(app, action.unit)
                saved = await actions.set_method(
                    app, user, action.unit, action.method, view.version if view else 0
                )
                task.done_steps = 1
                task.step(
                    self.now(),
                    progress=0.5,
                    intermediate={"method_version": saved.version},
                    message=f"method saved as version {saved.version}",
                )
                report()
            outcome = await actions.control(app, user, action.unit, ControlAction.START)
            task.message = "Start accepted"
            return outcome.model_dump(mode="json")
        if isinstance(action, StopAction):
            outcome = await actions.control(app, user, action.unit, ControlAction.STOP)
            task.message = "Stop accepted"
            return outcome.model_dump(mode="json")
        if isinstance(action, CommandAction):
            outcome = await actions.inject(app, user, action.unit, action.pcode)
            task.message = "command accepted"
            return outcome.model_dump(mode="json")
        if isinstance(action, StatusAction):
            live = require_unit(app, user, action.unit)
            summary = unit_summary(app, live).model_dump(mode="json")
            view = await current_method(app, action.unit)
            progress = None
            if view is not None and view.lines:
                progress = len(view.completed) / len(view.lines)
            summary["progress"] = progress
            summary["model"] = simulate_api.model_watch(app).status(action.unit)
            return summary
        if isinstance(action, RunModelAction):
            return await simulate_api.ws_run_model(app, user, action, task, report, self.now)
        if isinstance(action, GetTagAction):
            live = require_unit(app, user, action.unit)
            tag = live.tags.get(action.tag)
            if tag is None:
                raise ActionFailed(f"unit {action.unit!r} has no tag {action.tag!r}")
            return dict(tag.as_json())
        if isinstance(action, GetStatsAction):
            live = require_unit(app, user, action.unit)
            ctx = ctx_of(app)
            run = await ctx.read(
                _current_or_latest_run, ctx, action.unit, action.run_id or live.run_id
            )
            if run is None or (action.run_id is not None and run.run_id != action.run_id):
                raise ActionFailed(
                    f"no run {action.run_id!r}" if action.run_id else "the unit has no run yet"
                )
            if run.engine_id != action.unit:
                raise ActionFailed(f"run {run.run_id!r} is not a run of unit {action.unit!r}")
            stats = await ctx.read(
                tag_stats, ctx.storage, run, action.tag, action.start, action.end
            )
            if stats is None:
                raise ActionFailed(f"run {run.run_id!r} has no data for tag {action.tag!r}")
            return stats
        raise ActionFailed(f"unknown action {action.action!r}")
