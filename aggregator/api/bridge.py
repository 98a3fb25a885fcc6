"""From the engines' live state to /ws topics.

Ingest publishes raw changes on the app's LiveHub (aggregator/live.py); this subscriber turns
them into the payloads of docs/api.md and hands them to the /ws hub, which only enqueues. It
runs inside ingest's call, so it does the least work possible: nothing at all for topics that
no browser subscribed to.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from aggregator.api.commands import RESULT_TOPIC_SUFFIX
from aggregator.api.service import ctx_of, method_view, state_of, unit_summary
from aggregator.live import live_samples
from protocol import CommandResult, Method, TagsUpdated, UodDescription

log = logging.getLogger(__name__)

RECENT_ERRORS = 500


class LiveBridge:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._recent_errors: dict[str, deque[tuple[Any, ...]]] = {}
        self._last_summary: dict[str, dict[str, Any]] = {}

    def __call__(self, topic: str, data: Any) -> None:
        state = state_of(self.app)
        ws = state.ws
        if topic == "units":
            unit_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(unit_id, str):
                self._units(unit_id, data)
            return
        if not topic.startswith("unit/"):
            return
        unit_id, _, kind = topic[len("unit/") :].rpartition("/")
        if kind == "tags":
            self._tags(unit_id, data)
        elif kind == RESULT_TOPIC_SUFFIX.lstrip("/"):
            result = data if isinstance(data, CommandResult) else _result(data)
            if result is not None:
                state.commands.resolve(unit_id, result)
        elif kind in ("control", "registration"):
            if kind == "registration" and isinstance(data, dict):
                with contextlib.suppress(ValidationError):
                    state.uods[unit_id] = UodDescription.model_validate(data)
            self._unit(unit_id)
        elif kind == "runlog":
            ws.publish(f"unit/{unit_id}/runlog", data)
        elif kind == "method":
            try:
                state.methods[unit_id] = (
                    data if isinstance(data, Method) else Method.model_validate(data)
                )
            except ValidationError:
                log.warning("unit %s: unreadable method update ignored", unit_id)
                return
            self._method(unit_id)
        elif kind == "method_state":
            self._method(unit_id)
        elif kind == "errors":
            entries = data.get("entries", []) if isinstance(data, dict) else data
            fresh = self._new_errors(unit_id, entries)
            if fresh:
                ws.publish(f"unit/{unit_id}/errors", fresh)

    def wants(self, topic: str) -> bool:
        """A unit's tag values only while a /ws client watches them (values or samples)."""
        if not topic.endswith("/tags"):
            return True
        ws = state_of(self.app).ws
        unit = topic[: -len("/tags")]
        return ws.has_subscribers(topic) or ws.has_subscribers(f"{unit}/samples")

    def _tags(self, unit_id: str, data: Any) -> None:
        """The newest values for the value display; a data-log sample (ingest passes the
        TagsUpdated as `sample`) also as the points it stores, on a topic whose changes are never
        merged, so a live plot draws exactly what the plot API returns later (a sample taken
        while no run goes on is not stored, so not sent there)."""
        ws = state_of(self.app).ws
        tags = data.get("tags", []) if isinstance(data, dict) else data
        target = f"unit/{unit_id}/tags"
        if tags and ws.has_subscribers(target):
            ws.publish(target, list(tags))
        sample = data.get("sample") if isinstance(data, dict) else None
        target = f"unit/{unit_id}/samples"
        # A sample outside a run is stored nowhere: a live plot must not draw it either.
        if isinstance(sample, TagsUpdated) and sample.run_id and ws.has_subscribers(target):
            ws.publish(target, live_samples(sample))

    def _units(self, unit_id: str, summary: dict[str, Any]) -> None:
        """One unit's entry changed (ingest publishes only the unit that changed)."""
        if not summary.get("online", True):
            state_of(self.app).commands.engine_gone(unit_id)  # nobody will answer it now
        self._unit(unit_id)

    def _unit(self, unit_id: str) -> None:
        ws = state_of(self.app).ws
        live = ctx_of(self.app).live.engines.get(unit_id)
        if live is None:
            return
        control = f"unit/{unit_id}/control"
        if not (ws.has_subscribers("units") or ws.has_subscribers(control)):
            self._last_summary.pop(unit_id, None)  # unseen changes: the next one is news
            return
        summary = unit_summary(self.app, live).model_dump(mode="json")
        if self._last_summary.get(unit_id) == summary:
            return  # e.g. a run opened and its ControlState both announce it: send news only
        self._last_summary[unit_id] = summary
        ws.publish("units", summary)
        ws.publish(control, summary)

    def _method(self, unit_id: str) -> None:
        state = state_of(self.app)
        topic = f"unit/{unit_id}/method"
        if not state.ws.has_subscribers(topic):
            return
        live = ctx_of(self.app).live.engines.get(unit_id)
        view = method_view(state.methods.get(unit_id), live.method_state if live else {})
        if view is not None:
            state.ws.publish(topic, view.model_dump(mode="json"))

    def _new_errors(self, unit_id: str, entries: list[Any]) -> list[dict[str, Any]]:
        """Engine errors arrive twice (live, then once stored); forward each once."""
        recent = self._recent_errors.setdefault(unit_id, deque(maxlen=RECENT_ERRORS))
        fresh = []
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            key = (entry.get("time"), entry.get("level"), entry.get("message"))
            if key in recent:
                continue
            recent.append(key)
            fresh.append(
                {
                    "time": entry.get("time"),
                    "level": entry.get("level"),
                    "message": entry.get("message"),
                    "source": entry.get("source", "engine"),
                }
            )
        return fresh


def _result(data: Any) -> CommandResult | None:
    try:
        return CommandResult.model_validate(data)
    except ValidationError:
        return None
