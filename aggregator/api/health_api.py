"""`GET /api/health`, `GET /api/ready` (for a load balancer, no login) and `GET /metrics`
(Prometheus), issue 21 item 5.

Liveness only says the process answers: a load balancer that restarted a node on a database
outage would restart every node at once. Readiness says whether this node should get traffic:
the database answers, its schema is the one this code expects (a node of an older version during
a rolling upgrade reports itself not ready instead of writing to a schema it does not know), and
NATS answers once the site uses it.

/metrics is not under /api: it is text for Prometheus, not JSON, and it has its own optional
bearer token (`Settings.metrics_token`) so that a scraper needs no user account.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Literal

import sqlalchemy as sa
from aiohttp import web
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic import BaseModel

from aggregator.api.errors import ApiError
from aggregator.api.openapi import ApiRoutes, Call, Operation
from aggregator.api.service import ctx_of, state_of
from aggregator.db import alembic_config
from aggregator.metrics import Reading

TAGS = ("health",)
READY_TIMEOUT = 3.0
"""Seconds a readiness check may take: a load balancer's probe gives up soon after."""
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Status = Literal["ok", "failing", "not configured"]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    status: Status
    detail: str = ""


class Readiness(BaseModel):
    ready: bool
    database: Check
    migrations: Check
    nats: Check


async def health(_call: Call[None, None]) -> Health:
    return Health()


def _database_checks(engine: sa.Engine, heads: set[str]) -> tuple[Check, Check]:
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    if current == heads:
        return Check(status="ok"), Check(status="ok", detail=", ".join(sorted(heads)))
    have = ", ".join(sorted(current)) or "none"
    want = ", ".join(sorted(heads))
    return Check(status="ok"), Check(
        status="failing", detail=f"database at revision {have}, this version needs {want}"
    )


async def ready(call: Call[None, None]) -> Readiness:
    ctx = ctx_of(call.app)
    heads = call.app[_HEADS_KEY]
    try:
        database, migrations = await asyncio.wait_for(
            ctx.read(_database_checks, ctx.storage.engine, heads), READY_TIMEOUT
        )
    except Exception as exc:  # whatever the driver raises: the answer is "not ready"
        ctx.metrics.database_errors.inc()
        reason = f"no answer within {READY_TIMEOUT:g} s" if isinstance(exc, TimeoutError) else exc
        database = Check(status="failing", detail=_one_line(reason))
        migrations = Check(status="failing", detail="unknown: the database did not answer")
    nats = _nats_check(call.app)
    result = Readiness(
        ready=database.status == "ok" and migrations.status == "ok" and nats.status != "failing",
        database=database,
        migrations=migrations,
        nats=nats,
    )
    if not result.ready:
        failing = [name for name in ("database", "migrations", "nats") if not _ok(result, name)]
        raise ApiError(
            503, "not ready: " + ", ".join(failing), extra={"checks": result.model_dump()}
        )
    return result


def _nats_check(app: web.Application) -> Check:
    """The site's NATS, for a node started with --nats (the client reconnects by itself; while
    it does, this node cannot route commands or see the other nodes' units)."""
    from aggregator.cluster import CLUSTER_KEY  # nats itself is imported only by a joined node

    cluster = app.get(CLUSTER_KEY)
    if cluster is None:
        return Check(status="not configured")
    url = cluster.config.url
    if cluster.connected:
        return Check(status="ok", detail=url)
    return Check(status="failing", detail=f"not connected to NATS at {url}")


def _ok(result: Readiness, name: str) -> bool:
    check: Check = getattr(result, name)
    return check.status != "failing"


def _one_line(reason: object) -> str:
    text = str(reason).strip().splitlines()
    return (text[0] if text else type(reason).__name__)[:300]


async def metrics(request: web.Request) -> web.Response:
    ctx = ctx_of(request.app)
    token = ctx.settings.metrics_token
    if token is not None:
        sent = request.headers.get("Authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return web.Response(
                status=401,
                text="this aggregator's /metrics needs 'Authorization: Bearer <metrics token>'\n",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    return web.Response(body=ctx.metrics.render(), headers={"Content-Type": METRICS_CONTENT_TYPE})


_HEADS_KEY = web.AppKey("setpoint_migration_heads", set)


def _bind_metrics(app: web.Application) -> None:
    ctx = ctx_of(app)

    def read() -> Reading:
        hub = state_of(app).ws
        clients = hub.clients
        return Reading(
            frames_stored=ctx.writer.frames,
            batches=ctx.writer.batches,
            batch_failures=ctx.writer.failures,
            engines_connected=len(ctx.connections),
            ws_clients=len(clients),
            writer_queue=ctx.writer.pending,
            ws_queued_frames=sum(len(client.queue) for client in clients),
            ws_queued_bytes=hub.queue_budget.used,
            engine_held_bytes=ctx.held_budget.used,
        )

    ctx.metrics.bind(read)
    ctx.writer.on_latency = ctx.metrics.observe_ingest


def setup(app: web.Application, routes: ApiRoutes) -> None:
    app[_HEADS_KEY] = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    routes.add_all(
        app,
        [
            (
                Operation(
                    "GET",
                    "/api/health",
                    "Liveness: the process answers (no login; for a load balancer)",
                    None,
                    response=Health,
                    tags=TAGS,
                ),
                health,
            ),
            (
                Operation(
                    "GET",
                    "/api/ready",
                    "Readiness: database reachable, migrations current, NATS reachable once used",
                    None,
                    response=Readiness,
                    errors=(503,),
                    tags=TAGS,
                    description="503 with `checks` (the same object) when this node should not "
                    "get traffic.",
                ),
                ready,
            ),
        ],
    )
    app.router.add_get("/metrics", metrics)
    _bind_metrics(app)
