"""Two aggregator nodes of one site in this process: one PostgreSQL database, the NATS server on
127.0.0.1:4222, a site name of their own per test so parallel runs never hear each other."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
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
from tests.net import free_port

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


def node_app(db: str, key: bytes, node: str, site: str, url: str = NATS_URL) -> Aggregator:
    settings = Settings(batch_window=0.005, static_dir="/nonexistent", audit_key=key)
    config = ClusterConfig(url=url, node=node, site=site, heartbeat=0.3)
    app = create_app(db, settings, cluster=config)
    app[API_STATE_KEY].command_timeout = 2.0
    return Aggregator(app)


@contextlib.asynccontextmanager
async def two_nodes(db: str, tmp_path: Path, url: str = NATS_URL) -> AsyncIterator[Site]:
    name = "t" + uuid.uuid4().hex[:10]
    key = new_key_file(tmp_path / KEY_FILE)
    a, b = node_app(db, key, "a", name, url), node_app(db, key, "b", name, url)
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
        for agg in (b, a):
            if agg.runner.server is not None:  # a test may have stopped it
                await agg.stop()


@pytest.fixture
async def site(pg_database: str, tmp_path: Path) -> AsyncIterator[Site]:  # noqa: F811
    problem = nats_problem()
    if problem:
        pytest.fail(problem)
    async with two_nodes(pg_database, tmp_path) as result:
        yield result


class PrivateNats:
    """A nats-server of this test's own on a free loopback port, to stop and start at will
    (the shared one on 4222 must never be restarted by a test)."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.tmp_path = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("nats-server")
        if binary is None:
            pytest.fail("nats-server is not installed (it runs the site tests' private server)")
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("private nats-server did not start in 10 s") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10.0)
        self.proc = None


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[PrivateNats]:
    server = PrivateNats(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
