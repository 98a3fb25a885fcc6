"""Demand-driven live rate (protocol 1.4, LiveDemand): the sans-I/O pieces on each side.

Engine: engine/live_rate.py and its use by the reporting layer (samples identical whatever the
demand; a snapshot when watching starts). Link: the machine keeps the demand per connection.
Aggregator: the demand book's debounce and the /ws hub's interest callback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aggregator.live_demand import DemandBook, DemandRouter
from aggregator.ws.hub import Hub, Viewer
from engine.link.outbox import Outbox
from engine.live_rate import LivePlan, LiveRate
from protocol.messages import LiveDemand, TagsUpdated
from protocol.version import LIVE_DEMAND_VERSION, at_least
from tests.engine.conftest import Harness
from tests.link.test_machine import make, online

# --- engine: the plan ------------------------------------------------------------------------


def test_live_rate_sends_holds_and_snapshots_once_on_the_rise() -> None:
    rate = LiveRate()
    assert rate.plan(None) is LivePlan.SEND, "no link that tells: every scan, as before 1.4"
    assert rate.plan(True) is LivePlan.SEND
    assert rate.plan(False) is LivePlan.HOLD
    assert rate.plan(False) is LivePlan.HOLD
    assert rate.plan(True) is LivePlan.SNAPSHOT
    assert rate.plan(True) is LivePlan.SEND
    assert rate.plan(None) is LivePlan.SEND
    assert (rate.snapshots, rate.held_scans) == (1, 2)


# --- engine: the reporting layer -------------------------------------------------------------


def _scan_with_demand(demands: Sequence[bool | None]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The toy unit running, one scan per demand; (samples, live updates) it emitted."""
    h = Harness(method="Wait: 100 s")
    h.engine.inject("Inlet: VA01", "ann")
    h.engine.inject("PU01: 50 %", "ann")
    h.engine.control("Start", "ann")
    h.step(5)
    h.sink.clear()
    for demand in demands:
        sink: Any = h.sink
        sink.live_watched = demand  # what EngineLink offers
        h.step()
    updates = h.sink.of(TagsUpdated)
    samples = [u for u in updates if u["sample"]]
    live = [u for u in updates if not u["sample"]]
    return samples, live


def _wire(samples: list[dict[str, Any]]) -> list[Any]:
    """Samples as stored, but for the run's random id."""
    return [(s["time"], [t.model_dump() for t in s["tags"] if t.name != "Run Id"]) for s in samples]


def test_unwatched_sends_samples_only_and_stores_exactly_the_same() -> None:
    watched_samples, watched_live = _scan_with_demand([True] * 40)
    unwatched_samples, unwatched_live = _scan_with_demand([False] * 40)
    assert len(watched_live) > 20, "watched: a live update nearly every scan"
    assert unwatched_live == [], "unwatched: nothing between samples"
    assert len(unwatched_samples) == 4
    assert _wire(unwatched_samples) == _wire(watched_samples), "samples never depend on demand"


def test_each_sample_carries_every_tag_changed_since_the_previous_one() -> None:
    samples, _ = _scan_with_demand([False] * 20)
    names = [{t.name for t in s["tags"]} for s in samples]
    assert all({"FT01", "PT01", "Clock"} <= n for n in names), names


def test_watching_starts_with_a_snapshot_of_every_tag_then_scan_rate() -> None:
    h = Harness()
    demands = [False] * 12 + [True] * 4  # the rise lands between samples
    samples, live = _scan_with_demand(demands)
    assert len(live) == 3, "1.8 (snapshot), 1.9, then 2.1 (2.0 is a sample)"
    snapshot = {t.name for t in live[0]["tags"]}
    assert snapshot == set(h.engine.store.tags), "the first live update after the rise: all"
    assert len({t.name for t in live[1]["tags"]}) < len(snapshot)
    reference, _ = _scan_with_demand([True] * 16)
    assert _wire(samples) == _wire(reference)


# --- link: the demand lives with the connection ----------------------------------------------


def test_the_machine_keeps_the_demand_per_connection(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3")
    try:
        machine = make(box)
        online(machine, last_seq=0)
        assert machine.live_watched, (
            "a connection starts watched (an older aggregator says nothing)"
        )
        assert machine.frame_received(LiveDemand(watched=False).model_dump_json(), 1.0) == []
        assert not machine.live_watched
        machine.disconnected(2.0)
        online(machine, last_seq=0, now=3.0)
        assert machine.live_watched, "a new connection starts watched again"
    finally:
        box.close()


def test_version_gate() -> None:
    assert LIVE_DEMAND_VERSION == (1, 4)
    assert at_least("1.4", LIVE_DEMAND_VERSION) and at_least("1.10", LIVE_DEMAND_VERSION)
    assert not at_least("1.3", LIVE_DEMAND_VERSION) and not at_least("x", LIVE_DEMAND_VERSION)


# --- aggregator: the book --------------------------------------------------------------------


def test_a_rise_is_told_at_once_and_a_fall_after_the_hold() -> None:
    book = DemandBook(hold=5.0)
    assert book.attach("e1") is False, "nobody watches yet: told unwatched at registration"
    assert book.set_interest("e1", "ws", True, 10.0) == [("e1", True)]
    assert book.set_interest("e1", "ws", False, 11.0) == []
    assert book.due(15.9) == []
    assert book.due(16.0) == [("e1", False)]
    assert book.due(30.0) == []
    assert book.told("e1") is False


def test_a_flapping_subscription_costs_no_message() -> None:
    book = DemandBook(hold=5.0)
    book.attach("e1")
    assert book.set_interest("e1", "ws", True, 0.0) == [("e1", True)]
    for k in range(20):
        t = 1.0 + k * 0.5
        assert book.set_interest("e1", "ws", False, t) == []
        assert book.set_interest("e1", "ws", True, t + 0.1) == []
        assert book.due(t + 0.2) == []
    assert book.told("e1") is True


def test_sources_unite_and_everything_keeps_every_engine_watched() -> None:
    book = DemandBook(hold=0.0)
    book.attach("e1")
    book.set_interest("e1", "ws", True, 0.0)
    book.set_interest("e1", "other", True, 0.0)
    book.set_interest("e1", "ws", False, 1.0)
    assert book.due(2.0) == [], "another source still watches"
    assert book.attach("e2") is False
    book.everything = True
    assert book.attach("e3") is True
    assert book.watched("anything")


def test_the_router_sends_through_the_attached_connection_only() -> None:
    now = [0.0]
    router = DemandRouter(hold=1.0, clock=lambda: now[0])
    told: list[bool] = []
    router.attach("e1", told.append)
    assert told == [False]
    router.ws_interest("e1", True)
    router.ws_interest("e2", True)  # not connected: nothing to send, remembered
    assert told == [False, True]
    router.ws_interest("e1", False)
    now[0] = 2.0
    router.tick()
    assert told == [False, True, False]
    router.detach("e1", told.append)
    router.ws_interest("e1", True)
    assert told == [False, True, False]
    second: list[bool] = []
    router.attach("e2", second.append)
    assert second == [True], "registration tells the interest that came before it"


# --- aggregator: the /ws hub's interest -------------------------------------------------------


def test_the_hub_reports_the_first_and_the_last_live_subscriber_of_a_unit() -> None:
    calls: list[tuple[str, bool]] = []
    hub = Hub(lambda viewer, unit: True, on_interest=lambda u, w: calls.append((u, w)))
    ann = hub.connect(Viewer("ann", "viewer"), lambda: None)
    bob = hub.connect(Viewer("bob", "viewer"), lambda: None)
    hub.begin_subscribe(ann, "unit/e1/runlog")
    hub.begin_subscribe(ann, "units")
    assert calls == [], "run log and unit list need no scan-rate values"
    hub.begin_subscribe(ann, "unit/e1/tags")
    hub.begin_subscribe(bob, "unit/e1/control")
    hub.begin_subscribe(ann, "unit/e1/control")
    assert calls == [("e1", True)]
    hub.unsubscribe(ann, "unit/e1/tags")
    hub.unsubscribe(ann, "unit/e1/control")
    assert calls == [("e1", True)], "bob still watches"
    hub.disconnect(bob)
    assert calls == [("e1", True), ("e1", False)]
    assert not hub.live_watched("e1")
