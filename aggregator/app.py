"""Building the aiohttp application. Everything it owns hangs off app keys, never module globals,
so tests can run several aggregators in one process."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from aggregator.api.notify_api import NOTIFY_CONFIG_KEY
from aggregator.api.routes import setup_api_routes
from aggregator.context import CONTEXT_KEY, LIVE_HUB_KEY, AppContext, Settings
from aggregator.db import create_db_engine, upgrade
from aggregator.engine_ws import engine_ws
from aggregator.live import LiveHub, LiveState
from aggregator.notify import NotifyConfig
from aggregator.opcua import OpcUaConfig, setup_opcua
from aggregator.store import BatchResult, Storage

if TYPE_CHECKING:
    from aggregator.cluster import ClusterConfig
from aggregator.writer import Writer

log = logging.getLogger(__name__)


def create_app(
    database_url: str,
    settings: Settings | None = None,
    *,
    migrate: bool = True,
    hub: LiveHub | None = None,
    opcua: OpcUaConfig | None = None,
    notify: NotifyConfig | None = None,
    cluster: ClusterConfig | None = None,
) -> web.Application:
    settings = settings or Settings()
    engine = create_db_engine(database_url)
    if migrate:
        upgrade(engine)
    storage = Storage(engine)
    live = LiveState(hub or LiveHub())

    def on_result(result: BatchResult) -> None:
        for error in result.errors:
            live.hub.publish(f"unit/{error.engine_id}/errors", {"entries": [error.as_json()]})
        for engine_id, run_id in result.runs_closed:
            unit = live.engines.get(engine_id)
            if unit is not None and unit.run_id == run_id:
                unit.run_id = None  # closed by the aggregator (engine restarted)
        for engine_id in dict.fromkeys(e for e, _ in result.runs_opened + result.runs_closed):
            live.publish_units(engine_id)
        for change in result.alarms:  # stored: pages and notifications (api/alarms_api.py)
            live.hub.publish(f"unit/{change.engine_id}/alarms_stored", change)

    writer = Writer(storage, window=settings.batch_window, on_result=on_result)
    ctx = AppContext(settings=settings, storage=storage, writer=writer, live=live)

    app = web.Application(client_max_size=1024 * 1024)
    app[CONTEXT_KEY] = ctx
    app[LIVE_HUB_KEY] = live.hub
    app.router.add_get("/engine/ws", engine_ws)
    app[NOTIFY_CONFIG_KEY] = notify or NotifyConfig()
    setup_api_routes(app, static_dir=settings.static_dir)
    app.on_startup.append(_startup)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)
    if opcua is not None or cluster is not None:
        live.demand.every_unit_watched()  # they need every value of every unit (live_demand.py)
    if opcua is not None:
        setup_opcua(app, opcua)  # imports asyncua only now
    if cluster is not None:
        from aggregator.cluster import setup_cluster  # imports nats only now

        setup_cluster(app, cluster)
    return app


async def _startup(app: web.Application) -> None:
    ctx = app[CONTEXT_KEY]
    for row in await ctx.read(ctx.storage.list_engines):
        live = ctx.live.engine(row.id, row.uod_name)
        live.run_id = row.open_run_id
        try:
            live.control = json.loads(row.control_json or "{}")
        except ValueError:
            live.control = {}
    ctx.writer.start()
    await ctx.notices.start()


async def _shutdown(app: web.Application) -> None:
    ctx = app[CONTEXT_KEY]
    for connection in list(ctx.connections.values()):
        connection.close("aggregator shutting down")
    for connection in list(ctx.connections.values()):
        await connection.done.wait()
    await ctx.token_watch.stop()
    await ctx.notices.stop()
    await ctx.link_clock.stop()


async def _cleanup(app: web.Application) -> None:
    ctx = app[CONTEXT_KEY]
    await ctx.writer.stop()
    ctx.readers.shutdown(wait=True)
    if ctx.data_version is not None:
        ctx.data_version.close()
    ctx.storage.engine.dispose()
