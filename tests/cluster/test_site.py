"""Two nodes of a site (issue 21 item 1): a browser on node B sees node A's engine live, a
command sent to B reaches the engine on A and is audited once, 503 when no node holds the unit."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from urllib.parse import quote

import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.cluster import CLUSTER_KEY
from tests.aggregator.helpers import until
from tests.api.fake_engine import FakeEngine
from tests.cluster.conftest import Site
from tests.live.conftest import WsClient

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def control_path(engine: FakeEngine) -> str:
    return f"/api/units/{quote(engine.engine_id, safe='')}/control"


async def held_on_a(site: Site) -> FakeEngine:
    engine = await site.a.engine()
    cluster_b = site.b.agg.app[CLUSTER_KEY]
    await until(lambda: cluster_b.holders.get(engine.engine_id) == "a", 5.0, "B learns A holds it")
    return engine


async def test_browser_on_b_sees_tags_of_engine_on_a(site: Site) -> None:
    engine = await held_on_a(site)
    try:
        await engine.tags(None, time.time(), sample=False, FT01=1.0, PT01=2.0)
        live_b = site.b.agg.ctx.live
        await until(
            lambda: "PT01" in live_b.engines[engine.engine_id].tags, 5.0, "B's cache has PT01"
        )
        client = await WsClient(site.b, "viewer").connect()
        topic = f"unit/{engine.engine_id}/tags"
        await client.send({"action": "subscribe", "topic": topic})
        snapshot = await client.wait(lambda f: f.get("topic") == topic, what="snapshot on B")
        assert snapshot["kind"] == "snapshot"
        assert {t["name"]: t["value"] for t in snapshot["data"]} == {"FT01": 1.0, "PT01": 2.0}
        await engine.tags(None, time.time(), sample=False, FT01=3.0)
        change = await client.wait(lambda f: f.get("kind") == "change", what="change on B")
        assert change["topic"] == topic
        assert change["data"][0]["name"] == "FT01" and change["data"][0]["value"] == 3.0
        await client.send({"action": "subscribe", "topic": "units"})
        units = await client.wait(lambda f: f.get("topic") == "units", what="units on B")
        mine = [u for u in units["data"] if u["id"] == engine.engine_id]
        assert mine and mine[0]["online"] is True
        await client.close()
    finally:
        await engine.aclose()
    live_b = site.b.agg.ctx.live
    await until(lambda: not live_b.engines[engine.engine_id].online, 5.0, "offline on B too")
    assert all(t.quality == "stale" for t in live_b.engines[engine.engine_id].tags.values())


def audit_count(site: Site, unit_id: str) -> int:
    with site.a.agg.ctx.storage.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM audit WHERE action = 'control' AND unit_id = :u"),
                {"u": unit_id},
            ).scalar_one()
        )


async def test_command_on_b_reaches_engine_on_a_audited_once(site: Site) -> None:
    engine = await held_on_a(site)
    try:
        status, body = await site.b.call("POST", control_path(engine), json={"action": "Pause"})
        assert status == 200, body
        assert [type(r).__name__ for r in engine.requests] == ["ControlCommand"]
        assert engine.requests[0].command == "Pause"
        assert engine.requests[0].user == site.b.names["operator"]
        assert audit_count(site, engine.engine_id) == 1

        engine.answer = lambda _: (False, "not now", {"why": "test"})
        status, body = await site.b.call("POST", control_path(engine), json={"action": "Stop"})
        assert status == 409 and "not now" in str(body), body
        assert audit_count(site, engine.engine_id) == 2
    finally:
        await engine.aclose()


async def test_503_when_no_node_holds_the_unit(site: Site) -> None:
    engine = await held_on_a(site)
    await engine.aclose()
    cluster_b = site.b.agg.app[CLUSTER_KEY]
    await until(lambda: engine.engine_id not in cluster_b.holders, 5.0, "B: nobody holds it")
    started = time.monotonic()
    status, body = await site.b.call("POST", control_path(engine), json={"action": "Pause"})
    assert status == 503, body
    assert "no node" in str(body)
    assert time.monotonic() - started < 1.0  # refused at once, not after a timeout


async def test_engine_silent_behind_a_times_out_as_503(site: Site) -> None:
    engine = await held_on_a(site)
    engine.answer = lambda _: None
    try:
        status, body = await site.b.call("POST", control_path(engine), json={"action": "Pause"})
        assert status == 503 and "did not answer" in str(body), body
    finally:
        await engine.aclose()


async def test_ready_reports_nats(site: Site) -> None:
    status, body = await site.b.call("GET", "/api/ready", role=None)
    assert status == 200, body
    assert isinstance(body, dict) and body["nats"]["status"] == "ok"


async def test_method_edit_and_ws_action_on_b_reach_engine_on_a(site: Site) -> None:
    engine = await held_on_a(site)
    unit = engine.engine_id
    engine.answer = lambda m: (True, None, {"version": 1, "findings": []})
    try:
        path = f"/api/units/{quote(unit, safe='')}/method"
        body = {"text": "Mark: a", "expected_version": 0}
        status, saved = await site.b.call("PUT", path, json=body)
        assert status == 200, saved
        (edit,) = engine.requests
        assert isinstance(edit, p.SetMethod) and edit.text == "Mark: a" and not edit.dry_run
        assert edit.user == site.b.names["operator"]

        client = await WsClient(site.b, "operator").connect()
        topic = f"unit/{unit}/method"
        await client.send({"action": "subscribe", "topic": topic})
        await client.wait(lambda f: f.get("topic") == topic, what="method snapshot on B")
        await engine.method(1, [("l1", "Mark: a")])  # the engine reports its new method
        change = await client.wait(
            lambda f: f.get("topic") == topic and f.get("kind") == "change", what="method on B"
        )
        assert change["data"]["version"] == 1 and change["data"]["text"] == "Mark: a"

        engine.answer = lambda _: (True, None, None)
        await client.send({"action": "stop", "id": "s1", "unit": unit})
        end = await client.task_end("s1")
        assert end["status"] == "finished", end
        stop = engine.requests[-1]
        assert isinstance(stop, p.ControlCommand) and stop.command == "Stop"
        await client.close()
    finally:
        await engine.aclose()


async def test_simulation_on_b_names_the_holding_node(site: Site) -> None:
    engine = await held_on_a(site)
    try:
        path = f"/api/units/{quote(engine.engine_id, safe='')}/simulate"
        status, body = await site.b.call("POST", path, json={"method": "Mark: a"})
        assert status == 503 and "node 'a'" in str(body), body
        assert not [r for r in engine.model_requests if isinstance(r, p.RunModel)]
    finally:
        await engine.aclose()


async def test_engine_registering_on_b_ends_its_stale_link_on_a(site: Site) -> None:
    old = await held_on_a(site)
    unit = old.engine_id
    new = FakeEngine(site.b.agg, unit)  # the same engine, now linked to B (A did not notice)
    try:
        await new.start()
        await until(lambda: old.closed.is_set(), 5.0, "A ends its stale link")
        await until(lambda: unit not in site.a.agg.ctx.connections, 5.0, "A lets go")
        cluster_a = site.a.agg.app[CLUSTER_KEY]
        await until(lambda: cluster_a.holders.get(unit) == "b", 5.0, "A learns B holds it")
        live_a = site.a.agg.ctx.live
        await until(lambda: live_a.engines[unit].online, 5.0, "online again as seen on A")
        await new.tags(None, time.time(), sample=False, FT01=4.0)
        await until(
            lambda: getattr(live_a.engines[unit].tags.get("FT01"), "value", None) == 4.0,
            5.0,
            "B's engine live on A",
        )
        status, body = await site.a.call("POST", control_path(new), json={"action": "Pause"})
        assert status == 200, body
        assert isinstance(new.requests[-1], p.ControlCommand)
        assert unit in site.b.agg.ctx.connections  # A's end did not disturb B's link
    finally:
        await new.aclose()
        await old.aclose()


async def test_a_silent_node_s_units_go_offline_elsewhere(site: Site) -> None:
    engine = await held_on_a(site)
    unit = engine.engine_id
    try:
        await engine.tags(None, time.time(), sample=False, FT01=1.0)
        live_b = site.b.agg.ctx.live
        await until(lambda: "FT01" in live_b.engines[unit].tags, 5.0, "FT01 on B")
        cluster_a = site.a.agg.app[CLUSTER_KEY]
        assert cluster_a.nc is not None
        await cluster_a.nc.close()  # A is cut off: it says nothing more, not even goodbye
        await until(lambda: not live_b.engines[unit].online, 5.0, "offline on B")
        assert live_b.engines[unit].tags["FT01"].quality == "stale"
        status, body = await site.b.call("POST", control_path(engine), json={"action": "Pause"})
        assert status == 503, body
    finally:
        await engine.aclose()


async def test_a_silent_engine_does_not_hold_up_commands_to_others(site: Site) -> None:
    slow, quick = await held_on_a(site), await held_on_a(site)
    slow.answer = lambda _: None
    try:
        waiting = asyncio.ensure_future(
            site.b.call("POST", control_path(slow), json={"action": "Pause"})
        )
        await until(lambda: bool(slow.requests), 5.0, "the slow engine asked")
        started = time.monotonic()
        status, body = await site.b.call("POST", control_path(quick), json={"action": "Pause"})
        assert status == 200, body
        assert time.monotonic() - started < 1.0
        assert not waiting.done()
        assert (await waiting)[0] == 503
    finally:
        await slow.aclose()
        await quick.aclose()


async def test_a_node_stopping_shows_its_units_offline_at_once(site: Site) -> None:
    engine = await held_on_a(site)
    live_b = site.b.agg.ctx.live
    cluster_b = site.b.agg.app[CLUSTER_KEY]
    cluster_b.config = dataclasses.replace(cluster_b.config, heartbeat=60.0)  # no silence rule
    await site.a.agg.stop()
    await until(lambda: not live_b.engines[engine.engine_id].online, 5.0, "offline on B")
    await engine.aclose()


async def test_alarms_of_engine_on_a_show_live_on_b(site: Site) -> None:
    from tests.api.test_alarms import ALARM_UOD, alarms, event

    engine = await site.a.engine(uod=ALARM_UOD)
    unit = engine.engine_id
    cluster_b = site.b.agg.app[CLUSTER_KEY]
    await until(lambda: cluster_b.holders.get(unit) == "a", 5.0, "B learns A holds it")
    client = await WsClient(site.b, "viewer").connect()
    try:
        topic = f"unit/{unit}/alarms"
        await client.send({"action": "subscribe", "topic": topic})
        await client.wait(lambda f: f.get("topic") == topic, what="alarms snapshot on B")
        await alarms(engine, event("PT01 high", "unack_active", "normal", time.time()))
        change = await client.wait(
            lambda f: f.get("topic") == topic and f.get("kind") == "change", what="alarm on B"
        )
        assert [(a["name"], a["state"]) for a in change["data"]] == [("PT01 high", "unack_active")]
        status, body = await site.b.call("GET", f"/api/units/{quote(unit, safe='')}/alarms")
        assert status == 200 and any(a["name"] == "PT01 high" for a in body), body
    finally:
        await client.close()
        await engine.aclose()


async def test_logout_on_a_closes_the_session_s_socket_on_b(site: Site) -> None:
    """Issue 21 item 3: sessions live in the shared database, which every node's sockets
    follow (aggregator/ws/session_watch.py)."""
    client = await WsClient(site.b, "viewer").connect()
    await client.send({"action": "subscribe", "topic": "units"})
    await client.wait(lambda f: f.get("topic") == "units", what="units snapshot on B")
    status, body = await site.a.call("POST", "/api/auth/logout", role="viewer")
    assert status in (200, 204), body
    # told over PostgreSQL's NOTIFY (aggregator/security_notice.py): at once, not at B's 5 s
    # safety-net check
    await until(client.closed.is_set, 1.0, "B closes the socket")
    assert client.ws is not None and client.ws.close_code == 4001
