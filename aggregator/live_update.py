"""Ingest's live view (rule 8): what each accepted frame changes in the unit's live state, and
the news published on the app's LiveHub for /ws, OPC UA and the other subscribers.

Called for every frame above what is already accepted, before the commit (live values are about
now, not about durability), and for every `LiveTags` frame (1.5, never stored); replayed
(historical) tag values fill the stored run but never the live view.
"""

from __future__ import annotations

import time

from aggregator.live import LiveEngine, LiveState, LiveTag
from protocol import (
    ControlState,
    ErrorLog,
    LiveTags,
    Method,
    MethodState,
    RunLog,
    RunStarted,
    RunStopped,
    StoredMessage,
    TagsUpdated,
)

TIMING_TAGS = {"Run Time": "run_time", "Process Time": "process_time"}
"""System tags that are also fields of the unit summary: the engine sends ControlState only on
state changes, but these tags every scan while a run goes on."""
SUMMARY_PUSH_INTERVAL = 1.0


def update_live(
    state: LiveState, engine_id: str, live: LiveEngine, message: StoredMessage | LiveTags
) -> None:
    hub = state.hub
    topic = f"unit/{engine_id}"
    live.last_seen = time.time()
    if isinstance(message, TagsUpdated | LiveTags):
        news = hub.wants(f"{topic}/tags")
        changed = []
        timing = 0.0
        for tag in message.tags:
            if tag.historical:
                continue  # replayed: fills the stored run, never the live view
            current = live.tags.get(tag.name)
            if current is not None and current.tick > tag.tick:
                continue
            unit = tag.unit if tag.unit is not None else (current.unit if current else None)
            new = LiveTag(tag.name, tag.value, unit, tag.tick, tag.quality, tag.simulated)
            live.tags[tag.name] = new
            if news:
                changed.append(new.as_json())
            field = TIMING_TAGS.get(tag.name)
            if field is not None and type(tag.value) in (int, float):
                live.control[field] = float(tag.value)  # type: ignore[arg-type]
                timing = max(timing, tag.tick)
        sampled = isinstance(message, TagsUpdated) and message.sample
        if news and (changed or sampled):
            sample = message if sampled else None  # its stored points: live plot
            hub.publish(f"{topic}/tags", {"tags": changed, "sample": sample})
        if (
            timing
            and live.control.get("state", "Stopped") != "Stopped"
            and timing - live.summary_pushed_at >= SUMMARY_PUSH_INTERVAL
        ):
            live.summary_pushed_at = timing
            hub.publish(f"{topic}/control", live.control)
    elif isinstance(message, ControlState):
        if message.time >= live.control.get("time", 0.0):
            live.control = message.model_dump(mode="json")
            live.summary_pushed_at = message.time
            hub.publish(f"{topic}/control", live.control)
            state.publish_units(engine_id)
    elif isinstance(message, RunStarted):
        if message.time >= live.run_changed_at:  # a replayed old start is not news
            live.run_id = message.run_id
            live.run_changed_at = message.time
            state.publish_units(engine_id)
    elif isinstance(message, RunStopped):
        if live.run_id == message.run_id:
            live.run_id = None
            live.run_changed_at = max(live.run_changed_at, message.time)
            state.publish_units(engine_id)
    elif isinstance(message, RunLog):
        hub.publish(
            f"{topic}/runlog",
            {
                "run_id": message.run_id,
                "lines": [line.model_dump(mode="json") for line in message.lines],
            },
        )
    elif isinstance(message, Method):
        hub.publish(f"{topic}/method", message.model_dump(mode="json"))
    elif isinstance(message, MethodState):
        live.method_state = message.model_dump(mode="json")
        hub.publish(f"{topic}/method_state", live.method_state)
    elif isinstance(message, ErrorLog):
        hub.publish(
            f"{topic}/errors", {"entries": [e.model_dump(mode="json") for e in message.entries]}
        )
