"""In-memory live state of every engine, owned by the app, and the publish hook for /ws.

Ingest updates this state as frames arrive (before the commit: live values are about now, not
about durability) and publishes each change. Publishing calls subscribers synchronously, so a
subscriber must only enqueue (bounded, coalescing) and never await: ingest must never wait on a
browser.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aggregator.live_demand import DemandRouter
from aggregator.store.tables import stored_time
from protocol import Quality, ScalarValue, TagsUpdated, UodDescription

log = logging.getLogger(__name__)

Subscriber = Callable[[str, Any], None]


@dataclass(slots=True)
class LiveTag:
    name: str
    value: ScalarValue
    unit: str | None
    tick: float
    quality: Quality
    simulated: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "tick": self.tick,
            "quality": str.__str__(self.quality),
            "simulated": self.simulated,
        }


@dataclass
class LiveEngine:
    engine_id: str
    name: str
    online: bool = False
    session_id: str = ""
    uod: UodDescription | None = None
    tags: dict[str, LiveTag] = field(default_factory=dict)
    control: dict[str, Any] = field(default_factory=dict)
    method_state: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    run_changed_at: float = 0.0
    last_seen: float = 0.0
    summary_pushed_at: float = 0.0
    """Engine time of the last unit-summary push, so Run Time updates push at most once per
    second of engine time (a deterministic limit: no clock of ours, no timer per client)."""

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.engine_id,
            "name": self.name,
            "online": self.online,
            "state": self.control.get("state", "Stopped" if not self.online else "Unknown"),
            "run_id": self.run_id,
            "block": self.control.get("block", ""),
            "run_time": self.control.get("run_time", 0.0),
            "method_status": self.control.get("method_status", "OK"),
            "connection_status": self.control.get("connection_status", "Disconnected"),
        }


def live_samples(message: TagsUpdated) -> dict[str, Any]:
    """The points a data-log sample adds to the run's stored plot, for the live plot's `/ws`
    topic `unit/<id>/samples`: every tag of the sample (replayed ones too, they are stored),
    grouped by scan time, times rounded as storage rounds them, so a live point and the plot
    API's copy of it are equal."""
    by_time: dict[float, dict[str, ScalarValue]] = {}
    for tag in message.tags:
        by_time.setdefault(stored_time(tag.tick), {})[tag.name] = tag.value
    return {
        "run_id": message.run_id,
        "samples": [{"t": t, "values": values} for t, values in sorted(by_time.items())],
    }


def no_tag_values(topic: str) -> bool:
    """A subscriber's `wants` that takes every topic but the units' tag values."""
    return not topic.endswith("/tags")


class LiveHub:
    """Fan-out of live changes to whoever subscribed (the /ws bridge, aggregator/api/bridge.py,
    and tests); a no-op without them.

    A subscriber may say which topics it wants (`wants`): publishers of costly news ask
    `wants(topic)` first. The tag values of every frame are the costly one: building them for
    subscribers that only drop them was a tenth of the aggregator's CPU with 100 unwatched
    engines (bench/README.md, "Aggregator CPU")."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._wants: dict[int, Callable[[str], bool]] = {}

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def subscribe(
        self, callback: Subscriber, wants: Callable[[str], bool] | None = None
    ) -> Callable[[], None]:
        """`wants`: which topics the callback needs (None: all); it may still be called with
        others."""
        self._subscribers.append(callback)
        if wants is not None:
            self._wants[id(callback)] = wants

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
                if callback not in self._subscribers:
                    self._wants.pop(id(callback), None)

        return unsubscribe

    def wants(self, topic: str) -> bool:
        """Whether any subscriber needs news on `topic`."""
        for callback in self._subscribers:
            wants = self._wants.get(id(callback))
            if wants is None or wants(topic):
                return True
        return False

    def publish(self, topic: str, data: Any) -> None:
        for callback in list(self._subscribers):
            try:
                callback(topic, data)
            except Exception:
                log.exception("live subscriber failed on %s", topic)


class LiveState:
    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.engines: dict[str, LiveEngine] = {}
        self.demand = DemandRouter()
        """Who watches which unit live, told to engines as LiveDemand (live_demand.py)."""

    def engine(self, engine_id: str, name: str = "") -> LiveEngine:
        live = self.engines.get(engine_id)
        if live is None:
            live = LiveEngine(engine_id=engine_id, name=name or engine_id)
            self.engines[engine_id] = live
        return live

    def publish_units(self, engine_id: str) -> None:
        """Announce that one unit's entry in the unit list changed, with its summary.

        Only that unit's: with 100 engines, sending every summary on every state change made
        each change cost O(engines) here and again in every subscriber."""
        live = self.engines.get(engine_id)
        if live is not None and self.hub.has_subscribers:
            self.hub.publish("units", live.summary())

    def mark_offline(self, engine_id: str) -> None:
        """Rule 10: the moment the link is gone, every live value of the engine is stale."""
        live = self.engines.get(engine_id)
        if live is None:
            return
        live.online = False
        for tag in live.tags.values():
            tag.quality = Quality.STALE
        self.hub.publish(
            f"unit/{engine_id}/tags", {"tags": [t.as_json() for t in live.tags.values()]}
        )
        self.publish_units(engine_id)
