"""Two aggregator nodes of one site in this process: one PostgreSQL database, the NATS server on
127.0.0.1:4222, a site name of their own per test so parallel runs never hear each other."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from aggregator.api.service import API_STATE_KEY
from aggregator.app import create_app
from aggregator.audit import KEY_FILE, new_key_file
from aggregator.cluster import CLUSTER_KEY, Cluster, ClusterConfig
from aggregator.context import Settings
from aggregator.security import hash_password, new_token, token_hash
from tests.aggregator.conftest import pg_database  # noqa: F401  (fixture)
from tests.aggregator.helpers import Aggregator
from tests.api.conftest import Api

NATS_URL = "nats://127.0.0.1:4222"


def nats_problem() -> str | None:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1.0).close()
    except OSError as exc:
        return f"no NATS server on 127.0.0.1:4222 ({exc})"
    return None


@dataclass
class Site:
    a: Api
    b: Api
    name: str

    def cluster(self, node: Api) -> Cluster:
        return node.agg.app[CLUSTER_KEY]


def node_app(db: str, key: bytes, node: str, site: str) -> Aggregator:
    settings = Settings(batch_window=0.005, static_dir="/nonexistent", audit_key=key)
    config = ClusterConfig(url=NATS_URL, node=node, site=site, heartbeat=0.3)
    app = create_app(db, settings, cluster=config)
    app[API_STATE_KEY].command_timeout = 2.0
    return Aggregator(app)


@pytest.fixture
async def site(pg_database: str, tmp_path: Path) -> AsyncIterator[Site]:  # noqa: F811
    problem = nats_problem()
    if problem:
        pytest.fail(problem)
    name = "t" + uuid.uuid4().hex[:10]
    key = new_key_file(tmp_path / KEY_FILE)
    a, b = node_app(pg_database, key, "a", name), node_app(pg_database, key, "b", name)
    await a.start()
    await b.start()
    a.token = new_token()
    a.ctx.storage.create_engine_token("test-" + uuid.uuid4().hex[:8], token_hash(a.token))
    http = aiohttp.ClientSession()
    nodes = [Api(a, http), Api(b, http)]
    storage = a.ctx.storage
    suffix = uuid.uuid4().hex[:6]
    hashed = hash_password("correct horse")
    for role in ("viewer", "operator"):
        user_name = f"{role}-{suffix}"
        storage.add_user(user_name, role, hashed)
        user = storage.user_by_name(user_name)
        assert user is not None
        token = new_token()
        storage.create_session(user.id, token_hash(token), 3600.0)
        for node in nodes:
            node.tokens[role] = token
            node.names[role] = user_name
    try:
        yield Site(nodes[0], nodes[1], name)
    finally:
        await http.close()
        await b.stop()
        await a.stop()
