"""What must be single across the nodes of a site (issue 21 item 3): login throttling counts the
site's failures, not one node's (spreading guesses over nodes gains nothing), and a Start sent
to either node records its run. (A logout on node A ending the session's /ws on node B is in
test_site.py.)"""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.api.service import API_STATE_KEY, ApiState
from aggregator.store.tables import T_AUDIT, T_RUN
from tests.aggregator.helpers import until
from tests.cluster.conftest import Site

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


async def test_login_failures_on_both_nodes_count_together(site: Site) -> None:
    name = site.a.names["operator"]
    threshold = site.a.agg.app[API_STATE_KEY].throttle.threshold
    statuses = []
    for attempt in range(threshold):
        node = (site.a, site.b)[attempt % 2]
        status, _ = await node.call(
            "POST", "/api/auth/login", None, json={"username": name, "password": "wrong"}
        )
        statuses.append(status)
    assert statuses == [401] * threshold
    # each node saw fewer than `threshold` failures itself; both must refuse now
    for node in (site.a, site.b):
        keys = [f"user {name.casefold()}"]
        state = node.agg.app[API_STATE_KEY]

        def counted(s: ApiState = state, k: list[str] = keys) -> bool:
            return s.throttle.retry_after(k, s.throttle_clock()) > 0

        await until(counted, 10, "the other node's failures counted")
        status, body = await node.call(
            "POST",
            "/api/auth/login",
            None,
            json={"username": name, "password": "correct horse"},
        )
        assert status == 429, body


async def test_start_on_b_of_a_unit_on_a_records_its_run(site: Site) -> None:
    """Run lifecycle across nodes: a Start sent to node B for a unit held by node A is audited
    once, on B, naming the run that node A stored (B waits for it in the shared database)."""
    engine = await site.a.engine()
    run_id = "cross-" + uuid.uuid4().hex[:8]

    def start(request: object) -> tuple[bool, None, None]:
        async def begin() -> None:
            now = time.time()
            await engine.emit(
                lambda seq: p.RunStarted(
                    seq=seq, time=now, run_id=run_id, started=now, method_version=0
                )
            )

        asyncio.get_running_loop().create_task(begin())
        return True, None, None

    engine.answer = start
    try:
        unit = quote(engine.engine_id, safe="")
        await until(lambda: engine.engine_id in site.cluster(site.b).holders, 10, "B knows A")
        status, body = await site.b.call(
            "POST", f"/api/units/{unit}/control", json={"action": "Start"}
        )
        assert status == 200, body
        with site.a.agg.ctx.storage.engine.connect() as conn:
            pk = conn.execute(sa.select(T_RUN.c.pk).where(T_RUN.c.run_id == run_id)).scalar_one()
            entries = conn.execute(
                sa.select(T_AUDIT.c.run_pk).where(
                    T_AUDIT.c.unit_id == engine.engine_id, T_AUDIT.c.action == "control"
                )
            ).all()
        assert [e.run_pk for e in entries] == [pk]
    finally:
        await engine.aclose()
