"""`setup_api_routes(app)`: the full HTTP API, /ws and the web UI, in one call from the app
factory. Every /api route is registered here, through the one registry (openapi.py), which also
documents it; the middleware only renders errors. Everything it creates hangs off app keys."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from aggregator.api import (
    admin_api,
    alarms_api,
    assist_api,
    audit_api,
    auth,
    health_api,
    methods_api,
    notify_api,
    predictions,
    quarantine_api,
    report,
    runs_api,
    signatures_api,
    simulate_api,
    units_api,
)
from aggregator.api.bridge import LiveBridge
from aggregator.api.commands import EngineCommands
from aggregator.api.errors import api_middleware
from aggregator.api.openapi import ROUTES_KEY, ApiRoutes
from aggregator.api.origin import CrossSiteGuard
from aggregator.api.refusals import audit_refusal
from aggregator.api.service import API_STATE_KEY, ApiState, ctx_of, ws_visible
from aggregator.api.ws_backend import ApiWsBackend
from aggregator.audit import AuditTrail
from aggregator.security import dummy_password_hash
from aggregator.web import setup_web
from aggregator.ws.handler import WS_BACKEND_KEY, WS_SETTINGS_KEY, Backend, WsSettings, ws_handler
from aggregator.ws.hub import Hub
from protocol import UodDescription


def setup_api_routes(
    app: web.Application,
    *,
    static_dir: Path | str | None = None,
    command_timeout: float = 10.0,
    ws_settings: WsSettings | None = None,
    ws_queue_limit: int = 1000,
    clock: Callable[[], float] = time.time,
) -> None:
    ctx = ctx_of(app)
    app.middlewares.append(api_middleware)
    routes = ApiRoutes(
        authenticate=auth.authenticate,
        cookie_name=auth.SESSION_COOKIE,
        guard=CrossSiteGuard(ctx.settings.allowed_origins),
        on_refusal=audit_refusal,
    )
    app[ROUTES_KEY] = routes
    state = ApiState(
        routes=routes,
        commands=EngineCommands(
            connection=lambda engine_id: ctx.connections.get(engine_id), timeout=command_timeout
        ),
        audit=AuditTrail(ctx.storage.engine, key=ctx.settings.audit_key),
        ws=Hub(
            ws_visible(app), queue_limit=ws_queue_limit, on_interest=ctx.live.demand.ws_interest
        ),
        clock=clock,
        command_timeout=command_timeout,
    )
    app[API_STATE_KEY] = state
    auth.setup(app, routes)
    units_api.setup(app, routes)
    assist_api.setup(app, routes)
    runs_api.setup(app, routes)
    admin_api.setup(app, routes)
    quarantine_api.setup(app, routes)
    alarms_api.setup(app, routes)
    notify_api.setup(app, routes)
    methods_api.setup(app, routes)
    signatures_api.setup(app, routes)
    simulate_api.setup(app, routes)
    predictions.setup(app, routes)
    report.setup(app, routes)
    audit_api.setup(app, routes)
    health_api.setup(app, routes)
    backend: Backend = ApiWsBackend(app)
    app[WS_BACKEND_KEY] = backend
    app[WS_SETTINGS_KEY] = ws_settings or WsSettings()
    app.router.add_get("/ws", ws_handler)
    bridge = LiveBridge(app)
    ctx.hub.subscribe(bridge, bridge.wants)
    app.on_startup.append(_load_uods)
    setup_web(app, static_dir)


async def _load_uods(app: web.Application) -> None:
    """UODs of the engines seen before this start, so required roles hold while they are offline.
    Also makes the dummy password hash now, so the first login of an unknown name is not slower
    than any other failed login."""
    ctx = ctx_of(app)
    await ctx.read(dummy_password_hash)
    state = app[API_STATE_KEY]
    for row in await ctx.read(ctx.storage.list_engines):
        try:
            state.uods.setdefault(row.id, UodDescription.model_validate(json.loads(row.uod_json)))
        except (ValueError, ValidationError):
            continue
