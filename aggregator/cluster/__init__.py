"""Several aggregator nodes as one site over NATS (docs/site.md); nats itself is imported only
when a node joins a site (`serve --nats`).

Who may import it: aggregator.app (setup_cluster), aggregator.cli (ClusterConfig,
ClusterStartError), aggregator.api.health_api (CLUSTER_KEY, for readiness) and tests. It uses
aggregator.live, aggregator.context, aggregator.store.alarms (the stored alarm changes it
relays), aggregator.api.commands and aggregator.api.service (the engine requests it relays) and
protocol; never engine.
"""

from __future__ import annotations

from aiohttp import web

from aggregator.cluster.node import Cluster, ClusterConfig, ClusterStartError

CLUSTER_KEY = web.AppKey("setpoint_cluster", Cluster)

__all__ = ["CLUSTER_KEY", "Cluster", "ClusterConfig", "ClusterStartError", "setup_cluster"]


def setup_cluster(app: web.Application, config: ClusterConfig) -> Cluster:
    """Join the site when the app starts (after its own start-up), leave it when it stops."""
    from aggregator.api.service import API_STATE_KEY

    cluster = Cluster(app, config)
    app[CLUSTER_KEY] = cluster

    async def start(app: web.Application) -> None:
        await cluster.start()
        app[API_STATE_KEY].commands.remote = cluster.request

    async def stop(app: web.Application) -> None:
        await cluster.stop()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    return cluster
