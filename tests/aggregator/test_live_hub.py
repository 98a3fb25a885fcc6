"""LiveHub's `wants` (issue 15 items 1-2): the tag values of a frame are built and published
only when some subscriber needs them; the unit's live state is kept up to date either way, so a
client that subscribes later gets the current values in its snapshot."""

from __future__ import annotations

from typing import Any

from aggregator.live import LiveHub, LiveState, no_tag_values
from aggregator.live_update import update_live
from protocol import ControlState
from tests.aggregator.helpers import tags


def _state() -> tuple[LiveState, list[tuple[str, Any]]]:
    hub = LiveHub()
    seen: list[tuple[str, Any]] = []
    hub.subscribe(lambda topic, data: seen.append((topic, data)), no_tag_values)
    return LiveState(hub), seen


def test_tag_values_nobody_wants_are_not_published_but_kept() -> None:
    state, seen = _state()
    live = state.engine("pc/u")
    update_live(state, "pc/u", live, tags(1, 10.0, FT01=1.5))
    assert seen == [], "no subscriber wants tag values: nothing built, nothing sent"
    assert live.tags["FT01"].value == 1.5 and live.tags["FT01"].tick == 10.0
    control = ControlState(seq=2, time=11.0, state="Running", run_id="r")
    update_live(state, "pc/u", live, control)
    assert [topic for topic, _ in seen] == ["unit/pc/u/control", "units"], "other news still go"


def test_a_subscriber_that_wants_them_gets_every_changed_value_and_the_sample() -> None:
    state, seen = _state()
    watched: list[tuple[str, Any]] = []
    unsubscribe = state.hub.subscribe(
        lambda topic, data: watched.append((topic, data)), lambda t: t == "unit/pc/u/tags"
    )
    live = state.engine("pc/u")
    frame = tags(1, 10.0, FT01=1.5, PT01=0.2)
    update_live(state, "pc/u", live, frame)
    assert len(watched) == 1
    topic, data = watched[0]
    assert topic == "unit/pc/u/tags" and data["sample"] is frame
    assert [(t["name"], t["value"]) for t in data["tags"]] == [("FT01", 1.5), ("PT01", 0.2)]
    assert seen and seen[0][0] == "unit/pc/u/tags", "published to every subscriber, as before"
    unsubscribe()
    assert not state.hub.wants("unit/pc/u/tags")
    assert state.hub.wants("unit/pc/u/control")


def test_a_subscriber_without_wants_wants_everything() -> None:
    hub = LiveHub()
    hub.subscribe(lambda topic, data: None)
    assert hub.wants("unit/x/tags") and hub.wants("units")
    assert not LiveHub().wants("unit/x/tags")
