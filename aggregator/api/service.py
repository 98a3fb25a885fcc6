"""What the HTTP API and /ws share: who the user is, which units they may see, the views of a
unit, requests to engines, and the record every action leaves (audit trail and contributors).

Both front doors call these functions so that a Stop from a script over HTTP and a Stop from the
browser over /ws are checked, sent and audited the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import JsonValue, ValidationError

from aggregator.api.commands import EngineCommands, EngineOffline, EngineRefused, EngineTimeout
from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes
from aggregator.api.roles import ApiUser, has_role, may_control, may_see
from aggregator.api.schemas import MethodView, TagState, UnitSummary
from aggregator.api.throttle import LoginThrottle
from aggregator.audit import AuditTrail
from aggregator.context import CONTEXT_KEY, AppContext
from aggregator.live import LiveEngine
from aggregator.store.rows import RunRow
from aggregator.store.tables import T_CONTRIBUTOR, T_ENGINE, T_RUN, T_RUN_METHOD
from aggregator.ws.hub import Hub, Viewer
from protocol import CommandResult, Method, MethodLine, UodDescription
from protocol.version import parse_version


@dataclass
class ApiState:
    """Everything the API and /ws own, hung off the app (never module globals)."""

    routes: ApiRoutes
    commands: EngineCommands
    audit: AuditTrail
    ws: Hub
    clock: Callable[[], float] = time.time
    command_timeout: float = 10.0
    static_dir: Path | None = None
    methods: dict[str, Method] = field(default_factory=dict)
    uods: dict[str, UodDescription] = field(default_factory=dict)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    throttle_clock: Callable[[], float] = time.monotonic


API_STATE_KEY = web.AppKey("setpoint_api_state", ApiState)


def ctx_of(app: web.Application) -> AppContext:
    return app[CONTEXT_KEY]


def state_of(app: web.Application) -> ApiState:
    return app[API_STATE_KEY]


# --- units and runs -------------------------------------------------------------------------------


def uod_of(app: web.Application, unit_id: str) -> UodDescription | None:
    live = ctx_of(app).live.engines.get(unit_id)
    if live is not None and live.uod is not None:
        return live.uod
    return state_of(app).uods.get(unit_id)


def uod_sees(role: str, uod: UodDescription | None) -> bool:
    """May a user of `role` see a unit (or a run) with this UOD: control and view roles."""
    return uod is None or may_see(role, uod.required_roles, uod.view_roles)


def unit_visible(app: web.Application, role: str, unit_id: str) -> bool:
    if unit_id not in ctx_of(app).live.engines:
        return False
    return uod_sees(role, uod_of(app, unit_id))


def ws_visible(app: web.Application) -> Callable[[Viewer, str], bool]:
    def visible(viewer: Viewer, unit_id: str) -> bool:
        return unit_visible(app, viewer.role, unit_id)

    return visible


def require_unit(app: web.Application, user: ApiUser, unit_id: str) -> LiveEngine:
    live = ctx_of(app).live.engines.get(unit_id)
    if live is None:
        raise ApiError(404, f"no unit with id {unit_id!r}")
    uod = uod_of(app, unit_id)
    if not uod_sees(user.role, uod):
        assert uod is not None
        roles = ", ".join([*uod.required_roles, *uod.view_roles])
        raise ApiError(403, f"unit {unit_id!r} requires one of the roles {roles}")
    return live


def require_control(app: web.Application, user: ApiUser, unit_id: str) -> LiveEngine:
    """The unit, when the user may control it: the operator role and one of the unit's control
    roles (a user who holds only a view role sees the unit but gets 403 here)."""
    need_operator(user)
    live = require_unit(app, user, unit_id)
    uod = uod_of(app, unit_id)
    if uod is not None and not may_control(user.role, uod.required_roles):
        roles = ", ".join(uod.required_roles)
        raise ApiError(
            403, f"unit {unit_id!r} may be controlled only with one of the roles {roles}"
        )
    return live


def _protocol_of(db: sa.Engine, unit_id: str) -> str:
    """The protocol version the unit's engine registered with (stored at registration)."""
    with db.connect() as conn:
        found = conn.execute(
            sa.select(T_ENGINE.c.protocol_version).where(T_ENGINE.c.id == unit_id)
        ).scalar_one_or_none()
    return str(found or "")


async def require_engine_protocol(
    app: web.Application, unit_id: str, since: tuple[int, int], needs: str
) -> None:
    """409 when the unit's engine registered with a protocol older than `since`; `needs` says
    what needs the newer one. An engine that never said its version is let through."""
    ctx = ctx_of(app)
    version = await ctx.read(_protocol_of, ctx.storage.engine, unit_id)
    if version and parse_version(version) < since:
        raise ApiError(409, f"the unit's engine speaks protocol {version}; {needs}")


def run_uod(run: RunRow) -> UodDescription | None:
    try:
        return UodDescription.model_validate_json(run.uod_json or "{}")
    except ValidationError:
        return None


async def require_run(app: web.Application, user: ApiUser, run_id: str) -> RunRow:
    """The stored run, guarded by the required roles of the UOD it ran with (its detail, plot
    and CSV export alike)."""
    ctx = ctx_of(app)
    run = await ctx.read(ctx.storage.run_by_id, run_id)
    if run is None:
        raise ApiError(404, f"no run with id {run_id!r}")
    if not uod_sees(user.role, run_uod(run)):
        raise ApiError(403, f"run {run_id!r} belongs to a unit you may not see")
    return run


def unit_summary(app: web.Application, live: LiveEngine) -> UnitSummary:
    control = live.control
    uod = uod_of(app, live.engine_id)

    def number(key: str) -> float:
        value = control.get(key, 0.0)
        return float(value) if isinstance(value, int | float) else 0.0

    return UnitSummary(
        id=live.engine_id,
        name=(uod.name if uod is not None else "") or live.name or live.engine_id,
        online=live.online,
        stale=not live.online,
        state=str(control.get("state") or "Stopped"),
        method_status=str(control.get("method_status") or "OK"),
        run_id=live.run_id,
        block=str(control.get("block") or ""),
        run_time=number("run_time"),
        process_time=number("process_time"),
        connection_status=str(
            control.get("connection_status") or ("Connected" if live.online else "Disconnected")
        )
        if live.online
        else "Disconnected",
        last_seen=live.last_seen,
        required_roles=list(uod.required_roles) if uod is not None else [],
        view_roles=list(uod.view_roles) if uod is not None else [],
    )


def visible_units(app: web.Application, user: ApiUser) -> list[UnitSummary]:
    ctx = ctx_of(app)
    return [
        unit_summary(app, live)
        for unit_id, live in sorted(ctx.live.engines.items())
        if unit_visible(app, user.role, unit_id)
    ]


def tag_states(live: LiveEngine) -> list[TagState]:
    return [TagState.model_validate(tag.as_json()) for tag in live.tags.values()]


def method_view(method: Method | None, method_state: dict[str, Any]) -> MethodView | None:
    if method is None:
        return None
    same = method_state.get("version") in (None, method.version)
    return MethodView(
        version=method.version,
        text="\n".join(line.text for line in method.lines),
        lines=list(method.lines),
        started=list(method_state.get("started", [])) if same else [],
        completed=list(method_state.get("completed", [])) if same else [],
        failed=list(method_state.get("failed", [])) if same else [],
    )


def latest_stored_method(ctx: AppContext, unit_id: str) -> Method | None:
    """The unit's method as last stored (after an aggregator restart, before the engine sends
    its method again): the engine's latest, else the newest version stored with a run."""
    with ctx.storage.engine.connect() as conn:
        latest = conn.execute(
            sa.select(T_ENGINE.c.method_json).where(T_ENGINE.c.id == unit_id)
        ).scalar()
        if latest and latest != "{}":
            try:
                return Method.model_validate_json(latest)
            except ValidationError:
                pass
        row = conn.execute(
            sa.select(T_RUN_METHOD.c.version, T_RUN_METHOD.c.time, T_RUN_METHOD.c.lines_json)
            .select_from(T_RUN_METHOD.join(T_RUN, T_RUN.c.pk == T_RUN_METHOD.c.run_pk))
            .where(T_RUN.c.engine_id == unit_id)
            .order_by(T_RUN.c.pk.desc(), T_RUN_METHOD.c.version.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    try:
        lines = [MethodLine.model_validate(x) for x in json.loads(row.lines_json)]
    except (ValueError, ValidationError):
        return None
    return Method(seq=1, time=float(row.time), version=int(row.version), lines=lines)


async def current_method(app: web.Application, unit_id: str) -> MethodView | None:
    state = state_of(app)
    ctx = ctx_of(app)
    method = state.methods.get(unit_id)
    if method is None:
        method = await ctx.read(latest_stored_method, ctx, unit_id)
        if method is not None:
            state.methods.setdefault(unit_id, method)
    live = ctx.live.engines.get(unit_id)
    return method_view(method, live.method_state if live is not None else {})


# --- engine requests and their record --------------------------------------------------------------


class EngineRefusal(ApiError):
    """409: the engine refused; `data` is the machine-readable part of its answer, if any
    (e.g. SetMethod's {"current_version": N} on a stale expected_version)."""

    def __init__(self, error: str, data: JsonValue) -> None:
        super().__init__(409, error)
        self.data = data


async def engine_request(
    app: web.Application, unit_id: str, build: Callable[[str], Any]
) -> CommandResult:
    """Send a request to the unit's engine; map its failure to the contract's statuses."""
    state = state_of(app)
    try:
        return await state.commands.request(unit_id, build, timeout=state.command_timeout)
    except EngineOffline as exc:
        raise ApiError(503, str(exc)) from None
    except EngineTimeout as exc:
        raise ApiError(503, str(exc)) from None
    except EngineRefused as exc:
        raise EngineRefusal(f"the engine refused: {exc.error}", exc.data) from None


def _record_contributor(ctx: AppContext, run_id: str, user: ApiUser, now: float) -> None:
    with ctx.storage.engine.begin() as conn:
        run_pk = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).scalar()
        if run_pk is None:
            return
        updated = conn.execute(
            T_CONTRIBUTOR.update()
            .where(T_CONTRIBUTOR.c.run_pk == run_pk, T_CONTRIBUTOR.c.user == user.name)
            .values(last_action=now, role=user.role)
        ).rowcount
        if not updated:
            conn.execute(
                T_CONTRIBUTOR.insert().values(
                    run_pk=run_pk, user=user.name, role=user.role, first_action=now, last_action=now
                )
            )


def _run_pk(ctx: AppContext, run_id: str | None) -> int | None:
    if run_id is None:
        return None
    with ctx.storage.engine.connect() as conn:
        pk = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).scalar()
    return None if pk is None else int(pk)


async def record(
    app: web.Application,
    user: str | ApiUser,
    action: str,
    *,
    unit_id: str | None = None,
    run_id: str | None = None,
    old: JsonValue = None,
    new: JsonValue = None,
) -> None:
    """Append to the audit trail and, when a run was acted on, add the user to its contributors.

    Runs on the writer thread so it never races the ingest transactions (SQLite has one writer).
    """
    ctx = ctx_of(app)
    state = state_of(app)
    now = state.clock()
    name = user.name if isinstance(user, ApiUser) else user

    def write() -> None:
        run_pk = _run_pk(ctx, run_id)
        state.audit.append(
            time=now,
            user=name,
            action=action,
            unit_id=unit_id,
            run_id=run_id,
            run_pk=run_pk,
            old=old,
            new=new,
        )
        if run_id is not None and isinstance(user, ApiUser):
            _record_contributor(ctx, run_id, user, now)

    await ctx.writer.call(write)


def need_operator(user: ApiUser) -> None:
    if not has_role(user.role, "operator"):
        raise ApiError(403, f"this needs the operator role; {user.name} is {user.role}")
