"""Sans-I/O parts of /ws: queues, tasks, heartbeats and topic fan-out, without sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aggregator.ws.heartbeat import Heartbeat
from aggregator.ws.hub import Hub, TopicError, Viewer, parse_topic
from aggregator.ws.queue import ClientQueue
from aggregator.ws.tasks import Task


def tag(name: str, value: float) -> dict[str, object]:
    return {"name": name, "value": value, "unit": "%", "tick": 1.0, "quality": "good"}


def test_tags_coalesce_newest_wins_and_stay_bounded() -> None:
    q = ClientQueue(limit=3)
    for i in range(10_000):
        assert q.put_change("unit/u/tags", [tag("FT01", i), tag(f"T{i % 5}", i)], merge="by_key")
    assert len(q) == 1
    (frame,) = q.take()
    values = {t["name"]: t["value"] for t in frame["data"]}
    assert values["FT01"] == 9999
    assert values["T4"] == 9999
    assert len(frame["data"]) == 6
    assert not q.overflowed


def test_replace_keeps_order_and_last_value_per_slot() -> None:
    q = ClientQueue(limit=10)
    q.put_change("units", {"id": "a", "state": "Running"}, merge="replace", slot="a")
    q.put_change("units", {"id": "b", "state": "Stopped"}, merge="replace", slot="b")
    q.put_change("units", {"id": "a", "state": "Paused"}, merge="replace", slot="a")
    frames = q.take()
    assert [f["data"] for f in frames] == [
        {"id": "a", "state": "Paused"},
        {"id": "b", "state": "Stopped"},
    ]
    # after delivery a new change opens a new frame
    q.put_change("units", {"id": "a", "state": "Holding"}, merge="replace", slot="a")
    assert q.take()[0]["data"]["state"] == "Holding"


def test_appends_overflow_and_mark_the_queue() -> None:
    q = ClientQueue(limit=2)
    assert q.put_change("unit/u/runlog", {"lines": [1]})
    assert q.put_change("unit/u/runlog", {"lines": [2]})
    assert not q.put_change("unit/u/runlog", {"lines": [3]})
    assert q.overflowed


def test_drop_topic_after_unsubscribe() -> None:
    q = ClientQueue()
    q.put_change("unit/u/tags", [tag("A", 1)], merge="by_key")
    q.put_change("unit/v/tags", [tag("A", 2)], merge="by_key")
    q.drop_topic("unit/u/tags")
    assert [f["topic"] for f in q.take()] == ["unit/v/tags"]
    q.put_change("unit/u/tags", [tag("A", 3)], merge="by_key")
    assert q.take()[0]["data"] == [tag("A", 3)]


def test_task_status_stream_and_elapsed() -> None:
    task = Task("a1", "stop", created=100.0)
    assert task.frame(100.5)["status"] == "pending"
    assert task.frame(100.5)["data"]["elapsed"]["pending"] == 0.5
    task.start(101.0, "sent to the engine")
    task.step(101.5, progress=0.5, intermediate={"sent": True})
    frame = task.frame(102.0)
    assert frame["status"] == "working"
    assert frame["pending"] == 1
    assert frame["data"]["progress"] == 0.5
    assert frame["data"]["intermediate"] == {"sent": True}
    assert frame["data"]["elapsed"]["executing"] == 1.0
    task.finish(103.0, {"ok": True}, "Stop accepted")
    frame = task.frame(200.0)
    assert frame["status"] == "finished"
    assert frame["pending"] == 0
    assert frame["data"]["final"] == {"ok": True}
    assert frame["data"]["elapsed"] == {
        "created": 100.0,
        "started": 101.0,
        "ended": 103.0,
        "pending": 1.0,
        "executing": 2.0,
        "total": 3.0,
    }
    with pytest.raises(ValueError):
        task.fail(104.0, "too late")
    task.interrupt(105.0)  # no effect on a finished task
    assert task.status == "finished"


def test_task_exception_and_interrupt() -> None:
    failed = Task("a", "command", created=0.0)
    failed.fail(2.0, "unit offline")
    assert failed.frame(3.0)["status"] == "exception"
    assert failed.frame(3.0)["message"] == "unit offline"
    interrupted = Task("b", "run", created=0.0)
    interrupted.start(1.0)
    interrupted.interrupt(4.0, "socket closed")
    assert interrupted.frame(9.0)["data"]["elapsed"]["total"] == 4.0


def test_heartbeat_ping_and_timeout() -> None:
    hb = Heartbeat(interval=10.0, timeout=30.0)
    hb.start(0.0)
    assert not hb.ping_due(9.9)
    assert hb.ping_due(10.0)
    hb.sent(10.0)
    assert hb.next_wakeup(10.0) == 10.0
    hb.received(25.0)
    assert not hb.expired(54.9)
    assert hb.expired(55.0)


def test_topics_parse() -> None:
    assert parse_topic("units") == (None, "units")
    assert parse_topic("unit/pc1:chrom/tags") == ("pc1:chrom", "tags")
    assert parse_topic("unit/a/b/runlog") == ("a/b", "runlog")
    for bad in ("unit/x", "unit//tags", "unit/x/nope", "foo"):
        with pytest.raises(TopicError):
            parse_topic(bad)


def make_hub(hidden: set[str] | None = None) -> tuple[Hub, list[int]]:
    woke: list[int] = []
    hub = Hub(lambda user, unit: unit not in (hidden or set()) or user.role == "admin")
    return hub, woke


def test_hub_snapshot_then_held_changes_then_live() -> None:
    hub, _ = make_hub()
    woke: list[int] = []
    client = hub.connect(Viewer("ann", "viewer"), lambda: woke.append(1))
    hub.begin_subscribe(client, "unit/u/tags")
    hub.publish("unit/u/tags", [tag("A", 1)])  # arrives while the snapshot loads
    assert len(client.queue) == 0
    hub.complete_subscribe(client, "unit/u/tags", [tag("A", 0), tag("B", 0)])
    hub.publish("unit/u/tags", [tag("A", 2)])
    frames = client.queue.take()
    assert [f["kind"] for f in frames] == ["snapshot", "change", "change"] or [
        f["kind"] for f in frames
    ] == ["snapshot", "change"]
    assert frames[0]["data"] == [tag("A", 0), tag("B", 0)]
    assert frames[-1]["data"][-1] == tag("A", 2)
    assert woke


def test_hub_routes_only_to_subscribers_and_respects_roles() -> None:
    hub, _ = make_hub(hidden={"secret"})
    viewer = hub.connect(Viewer("ann", "viewer"), lambda: None)
    admin = hub.connect(Viewer("root", "admin"), lambda: None)
    with pytest.raises(TopicError):
        hub.begin_subscribe(viewer, "unit/secret/tags")
    for client in (viewer, admin):
        hub.begin_subscribe(client, "units")
        hub.complete_subscribe(client, "units", [])
    hub.begin_subscribe(admin, "unit/secret/tags")
    hub.complete_subscribe(admin, "unit/secret/tags", [])
    hub.publish("units", {"id": "secret", "state": "Running"})
    hub.publish("units", {"id": "open", "state": "Running"})
    hub.publish("unit/secret/tags", [tag("A", 1)])
    hub.publish("unit/other/tags", [tag("A", 1)])
    assert [f["data"]["id"] for f in viewer.queue.take() if f["kind"] == "change"] == ["open"]
    admin_frames = [f for f in admin.queue.take() if f["kind"] == "change"]
    assert [f["topic"] for f in admin_frames] == ["units", "units", "unit/secret/tags"]


def test_watchers_follow_subscriptions() -> None:
    hub, _ = make_hub()
    ann = hub.connect(Viewer("ann", "viewer"), lambda: None)
    bob = hub.connect(Viewer("bob", "operator"), lambda: None)
    hub.begin_subscribe(ann, "unit/u/watchers")
    hub.complete_subscribe(ann, "unit/u/watchers", hub.watchers("u"))
    hub.begin_subscribe(bob, "unit/u/tags")
    hub.begin_subscribe(ann, "unit/u/runlog")
    assert hub.watchers("u") == ["ann", "bob"]
    hub.disconnect(bob)
    assert hub.watchers("u") == ["ann"]
    frames = ann.queue.take()
    assert frames[0] == {"topic": "unit/u/watchers", "kind": "snapshot", "data": []}
    assert frames[-1]["data"] == ["ann"]


def test_unsubscribe_stops_delivery() -> None:
    hub, _ = make_hub()
    client = hub.connect(Viewer("ann", "viewer"), lambda: None)
    hub.begin_subscribe(client, "unit/u/errors")
    hub.complete_subscribe(client, "unit/u/errors", [])
    hub.publish("unit/u/errors", [{"message": "x"}])
    hub.unsubscribe(client, "unit/u/errors")
    hub.publish("unit/u/errors", [{"message": "y"}])
    assert client.queue.take() == []
    assert not hub.has_subscribers("unit/u/errors")


def test_a_change_is_serialized_once_for_all_its_subscribers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aggregator.ws import queue as queue_module

    encoded: list[dict[str, Any]] = []
    real = queue_module.encode_frame

    def counting(frame: dict[str, Any]) -> str:
        encoded.append(frame)
        return real(frame)

    monkeypatch.setattr(queue_module, "encode_frame", counting)
    hub, _ = make_hub()
    clients = [hub.connect(Viewer(f"u{i}", "viewer"), lambda: None) for i in range(3)]
    for client in clients:
        hub.begin_subscribe(client, "unit/u1/tags")
        hub.complete_subscribe(client, "unit/u1/tags", [])
        client.queue.take()  # the snapshots
    encoded.clear()  # each snapshot is encoded when queued, to count its bytes
    hub.publish("unit/u1/tags", [tag("A", 1)])
    hub.publish("unit/u1/runlog", {"lines": []})  # nobody subscribed: nothing to encode
    texts = [client.queue.take_encoded() for client in clients]
    assert texts[0] == texts[1] == texts[2]
    assert json.loads(texts[0][0]) == {
        "topic": "unit/u1/tags",
        "kind": "change",
        "data": [tag("A", 1)],
    }
    assert len(encoded) == 1  # once, not once per client
    # a client whose change was merged with a newer one gets its own frame
    hub.publish("unit/u1/tags", [tag("A", 2)])
    hub.publish("unit/u1/tags", [tag("B", 3)])
    merged = json.loads(clients[0].queue.take_encoded()[0])
    assert merged["data"] == [tag("A", 2), tag("B", 3)]
