"""Topics and fan-out: which client hears which change, and how a change may be merged.

The hub is sans-I/O and synchronous: `publish` is called from ingest and only appends to the
subscribed clients' bounded queues, then nudges their writers. Snapshots are fetched by the I/O
shell; changes arriving while a client's snapshot is being fetched are held back and delivered
after it, so a client never sees a change older than its snapshot applied on top of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aggregator.budget import ByteBudget, SharedBudget
from aggregator.ws.queue import ClientQueue, Merge, SharedFrame, change_size

UNIT_KINDS: dict[str, Merge] = {
    "tags": "by_key",
    "samples": "append",  # each stored point counts: never merged away (the plot draws them)
    "runlog": "append",
    "method": "replace",
    "control": "replace",
    "errors": "append",
    "watchers": "replace",
    "alarms": "by_key",  # the unit's alarms, each replaced by its newer state
}
LIVE_KINDS = frozenset({"tags", "control"})
"""Topics whose subscribers need the unit's scan-rate values: while a unit has one, its engine
sends every scan's changes (LiveDemand, aggregator/live_demand.py); otherwise only samples."""
GLOBAL_TOPICS = ("units", "alarms")
"""Topics of every unit at once, each item filtered by the unit it names."""
MAX_HELD = 10_000
"""Changes held for one topic while its snapshot loads; beyond that the client is dropped."""
MiB = 1024 * 1024
QUEUE_BYTES = 8 * MiB
"""Bytes of changes waiting for one client (queued, or held while a snapshot loads)."""
QUEUE_BYTES_TOTAL = 128 * MiB
"""The same, for all clients together."""
TASK_BYTES = 8 * MiB
"""Bytes of actions one client may have pending (each counted as its frame plus TASK_COST)."""
TASK_BYTES_TOTAL = 64 * MiB


class TopicError(ValueError):
    """The topic does not exist or the client may not see it."""


@dataclass(frozen=True)
class Viewer:
    """The person (or script) behind a websocket."""

    name: str
    role: str
    user_id: int = 0
    session: str = ""
    """The digest of the login session it came with; empty: not tied to one (tests)."""


def parse_topic(topic: str) -> tuple[str | None, str]:
    """'units' -> (None, 'units'); 'unit/<id>/<kind>' -> (id, kind). Raises TopicError."""
    if topic in GLOBAL_TOPICS:
        return None, topic
    if topic.startswith("unit/"):
        unit_id, _, kind = topic[len("unit/") :].rpartition("/")
        if unit_id and kind in UNIT_KINDS:
            return unit_id, kind
    raise TopicError(
        f"unknown topic {topic!r}; use 'units', 'alarms' or 'unit/<id>/<kind>' with kind one of "
        + ", ".join(UNIT_KINDS)
    )


@dataclass(eq=False)
class Client:
    id: int
    user: Viewer
    queue: ClientQueue
    wake: Callable[[], None]
    topics: set[str] = field(default_factory=set)
    held: dict[str, list[tuple[Any, Merge, str | None, SharedFrame | None]]] = field(
        default_factory=dict
    )

    def put(
        self,
        topic: str,
        data: Any,
        merge: Merge,
        slot: str | None,
        shared: SharedFrame | None = None,
    ) -> None:
        if topic in self.held:
            held = self.held[topic]
            if len(held) >= MAX_HELD or not self.queue.reserve(change_size(data, shared)):
                self.queue.overflowed = True
            else:
                held.append((data, merge, slot, shared))
        else:
            self.queue.put_change(topic, data, merge=merge, slot=slot, shared=shared)
        self.wake()

    def release_held(self, topic: str) -> list[tuple[Any, Merge, str | None, SharedFrame | None]]:
        """Stop holding changes of `topic`; returns them, their bytes given back."""
        held = self.held.pop(topic, [])
        for data, _, _, shared in held:
            self.queue.release(change_size(data, shared))
        return held


class Hub:
    """Every connected /ws client and what it subscribed to."""

    def __init__(
        self,
        visible: Callable[[Viewer, str], bool],
        *,
        queue_limit: int = 1000,
        on_interest: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._visible = visible
        self.on_interest = on_interest
        """Called with (unit id, watched) when a unit gains its first or loses its last
        subscriber of a LIVE_KINDS topic (aggregator/live_demand.py)."""
        self.queue_limit = queue_limit
        self.queue_bytes = QUEUE_BYTES
        self.queue_budget = SharedBudget(QUEUE_BYTES_TOTAL)
        self.task_bytes = TASK_BYTES
        self.task_budget = SharedBudget(TASK_BYTES_TOTAL)
        self._clients: dict[int, Client] = {}
        self._by_topic: dict[str, set[Client]] = {}
        self._next_id = 1
        self._watchers: dict[str, list[str]] = {}
        self._live_units: set[str] = set()

    @property
    def clients(self) -> list[Client]:
        return list(self._clients.values())

    def connect(self, user: Viewer, wake: Callable[[], None]) -> Client:
        budget = ByteBudget(self.queue_bytes, self.queue_budget)
        client = Client(self._next_id, user, ClientQueue(self.queue_limit, budget), wake)
        self._next_id += 1
        self._clients[client.id] = client
        return client

    def disconnect(self, client: Client) -> None:
        self._clients.pop(client.id, None)
        for topic in list(client.held):
            client.release_held(topic)
        client.queue.close()
        units = set()
        for topic in list(client.topics):
            self._by_topic.get(topic, set()).discard(client)
            if not self._by_topic.get(topic):
                self._by_topic.pop(topic, None)
            unit_id, _ = parse_topic(topic)
            if unit_id is not None:
                units.add(unit_id)
        client.topics.clear()
        for unit_id in units:
            self._update_watchers(unit_id)

    def begin_subscribe(self, client: Client, topic: str) -> tuple[str | None, str]:
        """Register interest; changes are held until `complete_subscribe` queues the snapshot."""
        unit_id, kind = parse_topic(topic)
        if unit_id is not None and not self._visible(client.user, unit_id):
            raise TopicError(f"unknown unit {unit_id!r}")
        client.release_held(topic)
        client.held[topic] = []
        if topic not in client.topics:
            client.topics.add(topic)
            self._by_topic.setdefault(topic, set()).add(client)
        if unit_id is not None:
            self._update_watchers(unit_id)
        return unit_id, kind

    def complete_subscribe(self, client: Client, topic: str, snapshot: Any) -> None:
        held = client.release_held(topic)
        if topic not in client.topics:
            return
        client.queue.drop_topic(topic)
        client.queue.put_frame({"topic": topic, "kind": "snapshot", "data": snapshot})
        for data, merge, slot, shared in held:
            client.queue.put_change(topic, data, merge=merge, slot=slot, shared=shared)
        client.wake()

    def abort_subscribe(self, client: Client, topic: str) -> None:
        client.release_held(topic)
        self.unsubscribe(client, topic)

    def unsubscribe(self, client: Client, topic: str) -> None:
        client.release_held(topic)
        if topic in client.topics:
            client.topics.discard(topic)
            subscribers = self._by_topic.get(topic)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self._by_topic[topic]
        client.queue.drop_topic(topic)
        try:
            unit_id, _ = parse_topic(topic)
        except TopicError:
            return
        if unit_id is not None:
            self._update_watchers(unit_id)

    def has_subscribers(self, topic: str) -> bool:
        return bool(self._by_topic.get(topic))

    def publish(self, topic: str, data: Any) -> None:
        """A change for everyone subscribed to `topic`. Never blocks, never raises on clients."""
        subscribers = self._by_topic.get(topic)
        if not subscribers:
            return
        shared = SharedFrame(topic, data)  # serialized once for every client that sends it as is
        if topic == "units":
            unit_id = str(data.get("id")) if isinstance(data, dict) else None
            for client in list(subscribers):
                if unit_id is None or self._visible(client.user, unit_id):
                    client.put(topic, data, "replace", unit_id, shared)
            return
        if topic == "alarms":  # one alarm per change: {unit_id, name, ...}
            unit_id = str(data.get("unit_id")) if isinstance(data, dict) else ""
            slot = f"{unit_id}/{data.get('name')}" if isinstance(data, dict) else None
            for client in list(subscribers):
                if self._visible(client.user, unit_id):
                    client.put(topic, data, "replace", slot, shared)
            return
        _, kind = parse_topic(topic)
        merge = UNIT_KINDS[kind]
        for client in list(subscribers):
            client.put(topic, data, merge, None, shared)

    def watchers(self, unit_id: str) -> list[str]:
        prefix = f"unit/{unit_id}/"
        names = {
            client.user.name
            for topic, clients in self._by_topic.items()
            if topic.startswith(prefix) and not topic.endswith("/watchers")
            for client in clients
        }
        return sorted(names)

    def live_watched(self, unit_id: str) -> bool:
        """Some client subscribed to one of the unit's LIVE_KINDS topics."""
        return any(self._by_topic.get(f"unit/{unit_id}/{kind}") for kind in LIVE_KINDS)

    def _update_watchers(self, unit_id: str) -> None:
        live = self.live_watched(unit_id)
        if live != (unit_id in self._live_units):
            if live:
                self._live_units.add(unit_id)
            else:
                self._live_units.discard(unit_id)
            if self.on_interest is not None:
                self.on_interest(unit_id, live)
        now = self.watchers(unit_id)
        if self._watchers.get(unit_id, []) != now:
            self._watchers[unit_id] = now
            self.publish(f"unit/{unit_id}/watchers", now)
