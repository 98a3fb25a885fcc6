"""Two real `serve --nats` processes of one site (issue 21 item 1): an engine linked to node A,
a browser on node B sees its tags live and controls it (audited once); SIGKILL of node A -> the
unit shows offline on node B within the nodes' heartbeat silence."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.db import create_db_engine
from tests.api.fake_engine import FakeEngine
from tests.cluster.conftest import NATS_URL, nats_problem
from tests.faults.harness import AggregatorProcess, Api
from tests.faults.test_failover import prepare_site, site_database  # noqa: F401  (fixture)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]


def serve(data_dir: Path, database: str, site: str, node: str) -> AggregatorProcess:
    process = AggregatorProcess(
        data_dir,
        serve_args=("--database", database, "--nats", NATS_URL, "--site", site, "--node", node),
        heartbeat=None,
    )
    process.start()
    return process


@dataclass
class Endpoint:
    url: str
    token: str


@pytest.fixture
def nodes(
    site_database: str,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[AggregatorProcess, AggregatorProcess, str]]:
    problem = nats_problem()
    if problem:
        pytest.fail(problem)
    dirs = [tmp_path / "a", tmp_path / "b"]
    token = prepare_site(site_database, dirs)
    site = "p" + uuid.uuid4().hex[:10]
    started: list[AggregatorProcess] = []
    try:
        for directory, name in zip(dirs, ("a", "b"), strict=True):
            started.append(serve(directory, site_database, site, name))
        yield started[0], started[1], token
    finally:
        for node in started:
            node.kill()


async def frames_until(ws: aiohttp.ClientWebSocketResponse, want: Any, what: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            frame = json.loads((await ws.receive()).data)
            if frame.get("type") == "ping":
                await ws.send_json({"action": "pong"})
            elif want(frame):
                return dict(frame)


async def test_two_serve_processes_share_a_unit(
    nodes: tuple[AggregatorProcess, AggregatorProcess, str],
    site_database: str,  # noqa: F811
) -> None:
    node_a, node_b, token = nodes
    engine = FakeEngine(Endpoint(node_a.http, token))  # type: ignore[arg-type]
    api = Api(node_b.http)
    try:
        await engine.start()
        await api.login()
        unit = engine.engine_id
        path = f"/api/units/{quote(unit, safe='')}"

        async def online_on_b() -> bool:
            async with api.session.get(f"{api.base}{path}", headers=api.headers) as resp:
                return resp.status == 200 and bool((await resp.json()).get("online"))

        deadline = time.monotonic() + 10
        while not await online_on_b():
            assert time.monotonic() < deadline, "the unit never showed online on node B"
            await asyncio.sleep(0.05)

        async with api.session.ws_connect(f"{node_b.http}/ws", headers=api.headers) as ws:
            topic = f"unit/{unit}/tags"
            await ws.send_json({"action": "subscribe", "topic": topic})
            await frames_until(ws, lambda f: f.get("topic") == topic, "snapshot")
            await engine.tags(None, time.time(), sample=False, FT01=6.5)
            change = await frames_until(
                ws, lambda f: f.get("topic") == topic and f.get("kind") == "change", "change"
            )
            assert change["data"][0]["value"] == 6.5

        async with api.session.post(
            f"{api.base}{path}/control", headers=api.headers, json={"action": "Hold"}
        ) as resp:
            assert resp.status == 200, await resp.text()
        assert [r.command for r in engine.requests if isinstance(r, p.ControlCommand)] == ["Hold"]
        db = create_db_engine(site_database)
        try:
            with db.connect() as conn:
                count = conn.execute(
                    sa.text("SELECT count(*) FROM audit WHERE action = 'control' AND unit_id = :u"),
                    {"u": unit},
                ).scalar_one()
        finally:
            db.dispose()
        assert count == 1

        node_a.kill()
        deadline = time.monotonic() + 8
        while await online_on_b():
            assert time.monotonic() < deadline, "the unit stayed online on B after A's SIGKILL"
            await asyncio.sleep(0.1)
    finally:
        await api.close()
        await engine.aclose()
