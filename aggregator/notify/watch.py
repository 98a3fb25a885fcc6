"""From the live changes of the units to the events people can be notified of.

Sans-I/O: fed the unit summaries, error-log entries and stored alarm changes that the aggregator
publishes anyway, with the time; returns Events. Transitions are found by comparing each unit's
summary with the previous one, so a change announced twice (live, then once stored) is one event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from aggregator.notify.prefs import Event
from aggregator.store.alarms import AlarmChange
from protocol import AlarmCause, AlarmState

RECENT_LINES = 500


def _label(summary: dict[str, Any]) -> str:
    return str(summary.get("name") or summary.get("id"))


class UnitWatch:
    def __init__(self) -> None:
        self._last: dict[str, dict[str, Any]] = {}
        self.offline_since: dict[str, float] = {}
        """Units that went offline while we watched, and since when (aggregator clock)."""
        self.names: dict[str, str] = {}
        self._recent: dict[str, deque[tuple[Any, Any]]] = {}

    def on_summary(self, summary: dict[str, Any], now: float) -> list[Event]:
        unit = str(summary.get("id"))
        self.names[unit] = _label(summary)
        before = self._last.get(unit)
        self._last[unit] = dict(summary)
        if before is None:
            return []
        name = self.names[unit]
        events: list[Event] = []
        was_run, run = before.get("run_id"), summary.get("run_id")
        if was_run is not None and was_run != run:
            events.append(
                Event("run_stopped", unit, f"{name}: run stopped", f"Run {was_run} stopped.")
            )
        if run is not None and run != was_run:
            events.append(Event("run_started", unit, f"{name}: run started", f"Run {run} started."))
        if summary.get("state") == "Paused" and before.get("state") != "Paused":
            events.append(
                Event("run_paused", unit, f"{name}: paused", f"Run {run or ''} is paused.".strip())
            )
        if summary.get("method_status") == "Error" and before.get("method_status") != "Error":
            block = summary.get("block") or ""
            where = f" in block {block}" if block else ""
            events.append(
                Event(
                    "method_error",
                    unit,
                    f"{name}: method error",
                    f"The method stopped on an error{where}; see the unit's error log.",
                )
            )
        if before.get("online") and not summary.get("online"):
            self.offline_since[unit] = now
        elif summary.get("online"):
            self.offline_since.pop(unit, None)
        return events

    def on_errors(self, unit: str, entries: Iterable[Any]) -> list[Event]:
        """`Notify:` lines; each once although ingest announces it live and again when stored."""
        recent = self._recent.setdefault(unit, deque(maxlen=RECENT_LINES))
        events = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            message = str(entry.get("message") or "")
            if entry.get("source") != "notify" and not message.startswith("Notify: "):
                continue
            key = (entry.get("time"), message)
            if key in recent:
                continue
            recent.append(key)
            text = message.removeprefix("Notify: ")
            name = self.names.get(unit, unit)
            events.append(
                Event("notify", unit, f"{name}: {text[:120]}", text, tag=f"notify-{unit}")
            )
        return events

    def on_alarms(self, change: AlarmChange) -> list[Event]:
        """An alarm raised (entering unack_active from another state); a snapshot at engine
        start reports states, not news."""
        if change.snapshot:
            return []
        name = self.names.get(change.engine_id, change.engine_id)
        events = []
        for e in change.events:
            if e.state is not AlarmState.UNACK_ACTIVE or e.previous is AlarmState.UNACK_ACTIVE:
                continue
            if e.cause is AlarmCause.ACK:
                continue
            value = "" if e.value is None else f" (value {e.value})"
            events.append(
                Event(
                    "alarm",
                    change.engine_id,
                    f"{name}: {e.priority.value.upper()} alarm {e.name}",
                    f"{e.message or e.name}{value}",
                    priority=e.priority.value,
                    tag=f"alarm-{change.engine_id}-{e.name}",
                )
            )
        return events
