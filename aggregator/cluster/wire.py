"""What nodes of one site say to each other over NATS, without any I/O (issue 21 item 1).

A node re-publishes the live-hub changes of the units whose engines it holds on
`<prefix>.unit.<id>.<kind>`; every other node applies them to its own LiveState (a replicated
last-state cache) and publishes them on its own hub. So a /ws snapshot of a remote unit is read
locally, as for a local one, and the hub's hold-changes-until-the-snapshot rule gives the same
snapshot-then-changes order: the cache is updated in the same synchronous call that publishes.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from aggregator.live import LiveState, LiveTag
from aggregator.store.alarms import AlarmChange
from aggregator.store.rows import AlarmStateRow
from protocol import AlarmEvent, Quality, TagsUpdated, UodDescription

FORWARDED = (
    "tags",
    "control",
    "registration",
    "runlog",
    "method",
    "method_state",
    "errors",
    "alarms_stored",
)
"""Unit topics that cross nodes. Not: command_result (answered over request/reply),
model_progress (simulations stay on the holding node)."""
REPLICA_ALARMS = "alarms_replica"
"""The hub topic kind a remote node publishes stored alarm changes under: the alarm pages and
/ws take it like `alarms_stored`, notifications do not (the holding node sends them, once)."""
_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(unit_id: str) -> str:
    """A unit id as one NATS subject token ('.', '*', '>' and spaces would split or match);
    receivers read the exact id from the payload."""
    return _TOKEN.sub("_", unit_id) or "_"


@dataclass(frozen=True)
class Subjects:
    prefix: str

    def unit(self, unit_id: str, kind: str) -> str:
        return f"{self.prefix}.unit.{subject_token(unit_id)}.{kind}"

    @property
    def everything(self) -> str:
        """Unit changes, heartbeats and syncs on one subscription: nats-py runs each
        subscription's callbacks in a task of its own, and a node's heartbeat must be handled
        after the changes it sent before it (one subscription keeps the publisher's order)."""
        return f"{self.prefix}.>"

    def kind_of(self, subject: str) -> str:
        """'unit', 'node', 'sync', 'cmd' or '' for a subject of this site."""
        rest = subject[len(self.prefix) + 1 :] if subject.startswith(self.prefix + ".") else ""
        return rest.partition(".")[0]

    def command(self, unit_id: str) -> str:
        return f"{self.prefix}.cmd.{subject_token(unit_id)}"

    @property
    def commands(self) -> str:
        return f"{self.prefix}.cmd.*"

    @property
    def sync(self) -> str:
        """A node that (re)joined asks every node to announce the units it holds."""
        return f"{self.prefix}.sync"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}.node"

    @property
    def throttle(self) -> str:
        """Login failures and successes, so every node throttles on the site's count."""
        return f"{self.prefix}.throttle"


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


def encode(node: str, unit_id: str, kind: str, data: Any, since: float) -> bytes:
    """`since`: when the holder's link to the engine registered (its wall clock), so that the
    newest holder wins whatever order the nodes' messages arrive in."""
    envelope = {"node": node, "unit": unit_id, "kind": kind, "since": since, "data": data}
    return json.dumps(envelope, default=_default).encode()


@dataclass(frozen=True)
class Change:
    node: str
    unit_id: str
    kind: str
    data: Any
    since: float = 0.0


def decode(payload: bytes) -> Change | None:
    """None for anything that is not a change of ours (another version's, or garbage)."""
    try:
        raw = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    node, unit_id, kind = raw.get("node"), raw.get("unit"), raw.get("kind")
    if not (isinstance(node, str) and isinstance(unit_id, str) and isinstance(kind, str)):
        return None
    if kind not in (*FORWARDED, "units"):
        return None
    since = raw.get("since", 0.0)
    if not isinstance(since, int | float):
        return None
    return Change(node, unit_id, kind, raw.get("data"), float(since))


def apply(live: LiveState, change: Change) -> tuple[str, Any] | None:
    """Apply a remote change to the cache; return the (topic, data) to publish on the local
    hub, or None when it changed nothing worth telling."""
    unit = live.engine(change.unit_id)
    data = change.data
    topic = f"unit/{change.unit_id}/{change.kind}"
    if change.kind != "units":
        unit.last_seen = time.time()  # heard of just now, as the holder did
    if change.kind == "units":
        if not isinstance(data, dict):
            return None
        unit.online = bool(data.get("online"))
        run_id = data.get("run_id")
        unit.run_id = run_id if isinstance(run_id, str) else None
        if isinstance(data.get("name"), str):
            unit.name = data["name"]
        if not unit.online:
            for tag in unit.tags.values():
                tag.quality = Quality.STALE
        return "units", unit.summary()
    if change.kind == "tags":
        return _tags(live, change)
    if change.kind == "alarms_stored":
        alarms = _alarm_change(data)
        return None if alarms is None else (f"unit/{change.unit_id}/{REPLICA_ALARMS}", alarms)
    if change.kind == "control" and isinstance(data, dict):
        unit.control = data
    elif change.kind == "registration":
        try:
            unit.uod = UodDescription.model_validate(data)
        except ValidationError:
            return None
        unit.name = unit.uod.name or unit.name
        unit.online = True
    elif change.kind == "method_state" and isinstance(data, dict):
        unit.method_state = data
    return topic, data


def _tags(live: LiveState, change: Change) -> tuple[str, Any] | None:
    data = change.data if isinstance(change.data, dict) else {}
    unit = live.engine(change.unit_id)
    changed = []
    for raw in data.get("tags") or []:
        try:
            tag = LiveTag(
                name=str(raw["name"]),
                value=raw["value"],
                unit=raw.get("unit"),
                tick=float(raw["tick"]),
                quality=Quality(raw.get("quality", "good")),
                simulated=bool(raw.get("simulated", False)),
            )
        except (KeyError, TypeError, ValueError):
            continue
        unit.tags[tag.name] = tag
        changed.append(tag.as_json())
    sample = None
    if data.get("sample") is not None:
        try:
            sample = TagsUpdated.model_validate(data["sample"])
        except ValidationError:
            sample = None
    if not changed and sample is None:
        return None
    return f"unit/{change.unit_id}/tags", {"tags": changed, "sample": sample}


def _alarm_change(data: Any) -> AlarmChange | None:
    if not isinstance(data, dict):
        return None
    try:
        return AlarmChange(
            engine_id=str(data["engine_id"]),
            run_id=data.get("run_id"),
            snapshot=bool(data.get("snapshot")),
            events=[AlarmEvent.model_validate(e) for e in data.get("events", [])],
            current=[AlarmStateRow(**c) for c in data.get("current", []) if isinstance(c, dict)],
            removed=[str(r) for r in data.get("removed", [])],
        )
    except (KeyError, TypeError, ValidationError):
        return None


def outgoing(kind: str, data: Any) -> Any:
    """A hub payload as it goes on the wire (the stored sample or alarm change as JSON)."""
    if kind == "tags" and isinstance(data, dict):
        return {"tags": data.get("tags", []), "sample": data.get("sample")}
    if kind == "alarms_stored" and isinstance(data, AlarmChange):
        return {
            "engine_id": data.engine_id,
            "run_id": data.run_id,
            "snapshot": data.snapshot,
            "events": data.events,
            "current": [asdict(c) for c in data.current],
            "removed": data.removed,
        }
    return data


def parse_topic(topic: str) -> tuple[str, str] | None:
    """'unit/<id>/<kind>' of a forwarded kind -> (id, kind)."""
    if not topic.startswith("unit/"):
        return None
    unit_id, _, kind = topic[len("unit/") :].rpartition("/")
    if not unit_id or kind not in FORWARDED:
        return None
    return unit_id, kind
