"""/ws over real loopback sockets: auth, topics, actions as tasks, heartbeats, bad frames."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

import protocol as p
from aggregator.api.service import API_STATE_KEY
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.live.conftest import WsClient, heartbeat

Clients = Callable[..., Any]


async def test_login_required_cookie_or_bearer(api: Api) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.http.ws_connect(f"{api.url}/ws")
    assert refused.value.status == 401
    by_cookie = WsClient(api, "viewer")
    await by_cookie.connect(
        headers={"Cookie": f"setpoint_session={api.tokens['viewer']}", "Origin": api.url}
    )
    await by_cookie.send({"action": "ping", "id": "p1"})
    pong = await by_cookie.wait(lambda f: f.get("type") == "pong")
    assert pong["id"] == "p1"
    await by_cookie.close()


async def test_tags_snapshot_then_changes_then_unsubscribe(
    api: Api, engine: FakeEngine, clients: Clients
) -> None:
    await engine.tags(None, time.time(), sample=False, FT01=1.0, PT01=2.0)
    client = await clients("viewer")
    topic = f"unit/{engine.engine_id}/tags"
    await client.send({"action": "subscribe", "topic": topic})
    snapshot = await client.wait(lambda f: f.get("topic") == topic, what="snapshot")
    assert snapshot["kind"] == "snapshot"
    assert {t["name"]: t["value"] for t in snapshot["data"]} == {"FT01": 1.0, "PT01": 2.0}
    await engine.tags(None, time.time(), sample=False, FT01=3.0)
    change = await client.wait(lambda f: f.get("kind") == "change", what="change")
    assert change["topic"] == topic and change["data"][0]["name"] == "FT01"
    assert change["data"][0]["value"] == 3.0 and change["data"][0]["quality"] == "good"
    await client.send({"action": "unsubscribe", "topic": topic})
    await client.send({"action": "ping", "id": "after"})
    await client.wait(lambda f: f.get("id") == "after")
    count = len(client.frames)
    await engine.tags(None, time.time(), sample=False, FT01=4.0)
    await client.send({"action": "ping", "id": "later"})
    await client.wait(lambda f: f.get("id") == "later")
    assert [f for f in client.frames[count:] if f.get("topic") == topic] == []


async def test_units_control_method_runlog_errors_watchers(
    api: Api, engine: FakeEngine, clients: Clients
) -> None:
    unit = engine.engine_id
    ann = await clients("viewer")
    for kind in ("control", "method", "runlog", "errors", "watchers"):
        await ann.send({"action": "subscribe", "topic": f"unit/{unit}/{kind}"})
    await ann.send({"action": "subscribe", "topic": "units"})
    units = await ann.wait(lambda f: f.get("topic") == "units")
    assert unit in [u["id"] for u in units["data"]]
    await ann.wait(lambda f: f.get("topic") == f"unit/{unit}/watchers" and f["kind"] == "snapshot")
    await engine.control_state(p.SystemState.RUNNING, block="Load")
    control = await ann.wait(
        lambda f: f.get("topic") == f"unit/{unit}/control" and f["kind"] == "change"
    )
    assert control["data"]["state"] == "Running" and control["data"]["block"] == "Load"
    await ann.wait(
        lambda f: (
            f.get("topic") == "units" and f["kind"] == "change" and f["data"]["state"] == "Running"
        )
    )
    await engine.method(2, [("a", "Mark: x")])
    method = await ann.wait(
        lambda f: f.get("topic") == f"unit/{unit}/method" and f["kind"] == "change"
    )
    assert method["data"]["version"] == 2 and method["data"]["text"] == "Mark: x"
    t0 = time.time()
    await engine.run_started("r-ws", t0)
    await engine.emit(
        lambda seq: p.RunLog(
            seq=seq,
            time=t0,
            run_id="r-ws",
            lines=[p.RunLogLine(id="l1", text="Mark: x", start=t0, state=p.LineState.RUNNING)],
        )
    )
    runlog = await ann.wait(
        lambda f: f.get("topic") == f"unit/{unit}/runlog" and f["kind"] == "change"
    )
    assert runlog["data"]["run_id"] == "r-ws" and runlog["data"]["lines"][0]["id"] == "l1"
    await engine.emit(
        lambda seq: p.ErrorLog(
            seq=seq,
            time=t0,
            run_id="r-ws",
            entries=[p.ErrorLogEntry(time=t0, level="error", message="valve stuck")],
        )
    )
    errors = await ann.wait(
        lambda f: f.get("topic") == f"unit/{unit}/errors" and f["kind"] == "change"
    )
    assert errors["data"] == [
        {"time": t0, "level": "error", "message": "valve stuck", "source": "engine"}
    ]
    bob = await clients("operator")
    await bob.send({"action": "subscribe", "topic": f"unit/{unit}/tags"})
    watchers = await ann.wait(
        lambda f: (
            f.get("topic") == f"unit/{unit}/watchers"
            and f["kind"] == "change"
            and len(f["data"]) == 2
        )
    )
    assert sorted(watchers["data"]) == sorted([api.names["viewer"], api.names["operator"]])
    # the stored error arrives once more from the writer: forwarded once only
    await ann.send({"action": "ping", "id": "sync"})
    await ann.wait(lambda f: f.get("id") == "sync")
    assert (
        len(
            [
                f
                for f in ann.frames
                if f.get("topic") == f"unit/{unit}/errors" and f["kind"] == "change"
            ]
        )
        == 1
    )


def task_frames(client: WsClient, request_id: str) -> list[dict[str, Any]]:
    return [f for f in client.frames if f.get("id") == request_id and f.get("type") == "task"]


async def test_actions_are_tasks_with_a_status_stream(
    api: Api, engine: FakeEngine, clients: Clients
) -> None:
    unit = engine.engine_id
    client = await clients("operator")
    await client.send({"action": "stop", "id": "a1", "unit": unit})
    end = await client.task_end("a1")
    assert end["status"] == "finished" and end["pending"] == 0 and end["total"] == 1
    assert [f["status"] for f in task_frames(client, "a1")] == ["pending", "working", "finished"]
    elapsed = end["data"]["elapsed"]
    assert elapsed["created"] <= elapsed["started"] <= elapsed["ended"]
    assert elapsed["total"] == pytest.approx(elapsed["pending"] + elapsed["executing"])
    assert end["data"]["progress"] == 1.0 and end["data"]["final"]["ok"] is True
    (stop,) = engine.requests
    assert isinstance(stop, p.ControlCommand) and stop.command == "Stop"
    assert stop.user == api.names["operator"]

    engine.answer = lambda m: (False, "syntax error in 'Bogus'", None)
    await client.send({"action": "command", "id": "a2", "unit": unit, "pcode": "Bogus"})
    end = await client.task_end("a2")
    assert end["status"] == "exception" and "syntax error" in end["message"]

    engine.answer = lambda m: (
        (True, None, {"version": 8}) if isinstance(m, p.SetMethod) else (True, None, None)
    )
    await client.send({"action": "run", "id": "a3", "unit": unit, "method": "Mark: go"})
    end = await client.task_end("a3")
    assert end["status"] == "finished" and end["total"] == 2
    middle = [f for f in task_frames(client, "a3") if f["data"]["intermediate"]]
    assert middle[0]["data"]["intermediate"] == {"method_version": 8}
    assert middle[0]["data"]["progress"] == 0.5 and middle[0]["pending"] == 1
    kinds = [type(r).__name__ for r in engine.requests[-3:]]
    assert kinds[0] == "SetMethod" and kinds[-1] == "ControlCommand"

    await engine.tags(None, time.time(), sample=False, FT01=7.5)
    await client.send({"action": "get_tag", "id": "a4", "unit": unit, "tag": "FT01"})
    assert (await client.task_end("a4"))["data"]["final"]["value"] == 7.5
    await client.send({"action": "get_tag", "id": "a5", "unit": unit, "tag": "Nope"})
    assert (await client.task_end("a5"))["status"] == "exception"
    await client.send({"action": "status", "id": "a6", "unit": unit})
    status = (await client.task_end("a6"))["data"]["final"]
    assert status["id"] == unit and status["online"] is True

    t0 = 1_700_000_000.0
    await engine.run_started("stats-run", t0)
    for i in range(10):
        await engine.tags("stats-run", t0 + i, ack=i == 9, FT01=float(i))
    await client.send(
        {
            "action": "get_stats",
            "id": "a7",
            "unit": unit,
            "tag": "FT01",
            "run_id": "stats-run",
            "start": t0 + 2,
            "end": t0 + 5,
        }
    )
    stats = (await client.task_end("a7"))["data"]["final"]
    assert (stats["min"], stats["max"], stats["count"], stats["last"]) == (2.0, 5.0, 4, 5.0)
    assert stats["mean"] == 3.5

    viewer = await clients("viewer")
    await viewer.send({"action": "stop", "id": "v1", "unit": unit})
    end = await viewer.task_end("v1")
    assert end["status"] == "exception" and "operator" in end["message"]


async def test_bad_frames_are_answered_naming_the_field(
    api: Api, engine: FakeEngine, clients: Clients
) -> None:
    client = await clients("viewer")
    await client.ws.send_str("{not json")
    await client.send({"action": "dance"})
    await client.send({"action": "command", "id": "c1", "unit": engine.engine_id})
    await client.send({"action": "subscribe", "topic": "unit/x/nope"})
    await client.send({"action": "subscribe", "topic": "unit/ghost/tags", "id": "s1"})
    errors = [f for f in client.frames if f.get("type") == "error"]

    def got(n: int) -> bool:
        errors[:] = [f for f in client.frames if f.get("type") == "error"]
        return len(errors) >= n

    await client.wait(lambda f: got(5), what="five errors")
    assert errors[0]["error"].startswith("not valid JSON")
    assert errors[1]["field"] == "action"
    assert errors[2]["field"] == "pcode" and errors[2]["id"] == "c1"
    assert errors[3]["field"] == "topic"
    assert errors[4]["id"] == "s1" and "unknown unit" in errors[4]["error"]
    assert errors[4]["subscribe"] == "unit/ghost/tags"
    assert not [e for e in errors if "topic" in e]  # clients route frames with a topic
    await client.send({"action": "ping", "id": "still-up"})
    await client.wait(lambda f: f.get("id") == "still-up")


async def test_server_pings_and_drops_a_silent_client(api: Api, clients: Clients) -> None:
    heartbeat(api, 0.2, 2.0)
    talker = await clients("viewer")
    await talker.wait(lambda f: f.get("type") == "ping", 3.0, "server ping")
    silent = await clients("viewer", auto_pong=False)
    await asyncio.wait_for(silent.closed.wait(), 10.0)
    assert silent.ws is not None and silent.ws.close_code == 4000
    assert not talker.closed.is_set()  # it answers the pings and stays
    await until(lambda: len(api.agg.app[API_STATE_KEY].ws.clients) == 1, 5.0, "one client left")


async def test_run_time_is_pushed_at_most_once_per_engine_second(
    engine: FakeEngine, clients: Clients
) -> None:
    unit = engine.engine_id
    ann = await clients("viewer")
    await ann.send({"action": "subscribe", "topic": "units"})
    await ann.send({"action": "subscribe", "topic": f"unit/{unit}/control"})
    await ann.wait(lambda f: f.get("topic") == f"unit/{unit}/control" and f["kind"] == "snapshot")
    t0 = time.time()
    await engine.control_state(p.SystemState.RUNNING, run_id="r-rt", run_time=0.0)
    await ann.wait(
        lambda f: (
            f.get("topic") == f"unit/{unit}/control"
            and f["kind"] == "change"
            and f["data"]["state"] == "Running"
        )
    )
    # the engine sends Run Time every scan (0.25 s here); ControlState only on state changes
    for i in range(1, 13):
        await engine.tag_values("r-rt", t0 + 1 + i * 0.25, {"Run Time": i * 0.25}, sample=False)
    await ann.wait(
        lambda f: (
            f.get("topic") == "units"
            and f["kind"] == "change"
            and f["data"]["id"] == unit
            and f["data"]["run_time"] == 2.25
        )
    )
    await ann.send({"action": "ping", "id": "sync-run"})
    await ann.wait(lambda f: f.get("id") == "sync-run")
    pushed = [
        f["data"]["run_time"]
        for f in ann.frames
        if f.get("topic") == f"unit/{unit}/control"
        and f["kind"] == "change"
        and f["data"]["state"] == "Running"
    ]
    # one push per second of the tags' engine time (ControlState counts as one), not per scan
    assert pushed == [0.0, 0.25, 1.25, 2.25]
    # a stopped unit does not push Run Time
    await engine.control_state(p.SystemState.STOPPED, run_time=3.0)
    await ann.wait(
        lambda f: f.get("topic") == f"unit/{unit}/control" and f["data"].get("state") == "Stopped"
    )
    count = len(ann.frames)
    await engine.tag_values(None, t0 + 10, {"Run Time": 0.0}, sample=False)
    await ann.send({"action": "ping", "id": "sync-rt"})
    await ann.wait(lambda f: f.get("id") == "sync-rt")
    assert [f for f in ann.frames[count:] if f.get("topic") == f"unit/{unit}/control"] == []


async def test_a_state_change_among_100_engines_publishes_one_summary(
    api: Api, engine: FakeEngine, clients: Clients, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fan-out cost: a unit's state change costs the same with 1 or 100 engines registered
    (it used to publish, summarize and `engine_gone` every unit on every change)."""
    from aggregator.api import bridge
    from aggregator.api.service import unit_summary as real_summary
    from aggregator.context import CONTEXT_KEY
    from aggregator.live import LiveEngine

    ctx = api.agg.app[CONTEXT_KEY]
    for k in range(99):  # 99 more units, known but offline
        other = f"pc-{k:02d}/Chromatography"
        ctx.live.engines[other] = LiveEngine(engine_id=other, name="Chromatography")
    ann = await clients("viewer")
    await ann.send({"action": "subscribe", "topic": "units"})
    await ann.wait(lambda f: f.get("topic") == "units" and f["kind"] == "snapshot")
    units: list[Any] = []
    unsubscribe = ctx.hub.subscribe(lambda t, d: units.append(d) if t == "units" else None)
    summaries: list[str] = []
    gone: list[str] = []
    commands = api.agg.app[API_STATE_KEY].commands
    real_gone = commands.engine_gone

    def counting_summary(app: Any, live: Any) -> Any:
        summaries.append(live.engine_id)
        return real_summary(app, live)

    def counting_gone(engine_id: str) -> None:
        gone.append(engine_id)
        real_gone(engine_id)

    monkeypatch.setattr(bridge, "unit_summary", counting_summary)
    monkeypatch.setattr(commands, "engine_gone", counting_gone)
    try:
        await engine.control_state(p.SystemState.RUNNING, block="Load")
        await ann.wait(
            lambda f: (
                f.get("topic") == "units"
                and f["kind"] == "change"
                and f["data"]["state"] == "Running"
            )
        )
    finally:
        unsubscribe()
    assert len(units) == 1 and units[0]["id"] == engine.engine_id  # one unit, not the list
    assert set(summaries) == {engine.engine_id}  # the changed unit only (control + units topic)
    assert gone == []
