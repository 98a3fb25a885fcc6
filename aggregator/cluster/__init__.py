"""Several aggregator nodes as one site over NATS (docs/site.md). Imported only with --nats."""

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
