"""/ws alarm topics: `unit/<id>/alarms` (snapshot of every declared alarm, then each change) and
`alarms` (every visible unit's alarms not in normal state, then each change), only for units the
viewer may see."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import protocol as p
from tests.api.conftest import Api
from tests.api.test_alarms import ALARM_UOD, alarms, event

Clients = Callable[..., Any]


async def test_unit_topic_snapshot_then_changes(api: Api, clients: Clients) -> None:
    engine = await api.engine(uod=ALARM_UOD)
    client = await clients("viewer")
    topic = f"unit/{engine.engine_id}/alarms"
    await client.send({"action": "subscribe", "topic": topic})
    snapshot = await client.wait(lambda f: f.get("topic") == topic, what="snapshot")
    assert snapshot["kind"] == "snapshot"
    assert [(a["name"], a["state"]) for a in snapshot["data"]] == [
        ("PT01 high", "normal"),
        ("PT01 high-high", "normal"),
    ]
    await alarms(engine, event("PT01 high", "unack_active", "normal", time.time(), value=3.2))
    change = await client.wait(
        lambda f: f.get("topic") == topic and f.get("kind") == "change", what="change"
    )
    assert [(a["name"], a["state"], a["value"]) for a in change["data"]] == [
        ("PT01 high", "unack_active", 3.2)
    ]
    await engine.aclose()


async def test_alarms_topic_only_for_units_the_viewer_may_see(api: Api, clients: Clients) -> None:
    hidden_uod = ALARM_UOD.model_copy(update={"required_roles": ["admin"], "name": "Hidden"})
    seen = await api.engine(uod=ALARM_UOD)
    hidden = await api.engine(uod=hidden_uod)
    await alarms(seen, event("PT01 high", "unack_active", "normal", time.time()))
    viewer = await clients("viewer")
    admin = await clients("admin")
    for client in (viewer, admin):
        await client.send({"action": "subscribe", "topic": "alarms"})
    first = await viewer.wait(lambda f: f.get("topic") == "alarms", what="snapshot")
    assert [(a["unit_id"], a["name"]) for a in first["data"]] == [(seen.engine_id, "PT01 high")]
    await admin.wait(lambda f: f.get("topic") == "alarms", what="admin snapshot")
    await alarms(
        hidden,
        event("PT01 high-high", "unack_active", "normal", time.time(), priority="urgent"),
    )
    got = await admin.wait(
        lambda f: f.get("topic") == "alarms" and f.get("kind") == "change", what="admin change"
    )
    assert got["data"]["unit_id"] == hidden.engine_id and got["data"]["priority"] == "urgent"
    await alarms(seen, event("PT01 high", "ack_active", "unack_active", time.time(), cause="ack"))
    mine = await viewer.wait(
        lambda f: f.get("topic") == "alarms" and f.get("kind") == "change", what="viewer change"
    )
    assert mine["data"]["unit_id"] == seen.engine_id and mine["data"]["state"] == "ack_active"
    assert not [
        f for f in viewer.frames if f.get("topic") == "alarms" and "Hidden" in str(f.get("data"))
    ]
    assert all(
        f["data"]["unit_id"] != hidden.engine_id
        for f in viewer.frames
        if f.get("topic") == "alarms" and f.get("kind") == "change"
    )
    refused = {"action": "subscribe", "topic": f"unit/{hidden.engine_id}/alarms", "id": "s"}
    await viewer.send(refused)
    await viewer.wait(lambda f: f.get("id") == "s" and "unknown unit" in str(f), what="refusal")
    for engine in (seen, hidden):
        await engine.aclose()
    assert p.AlarmState.ACK_ACTIVE.value == "ack_active"
