"""Each unit's alarms as pages see them: the UOD's definitions with the latest stored state.

Kept in memory (loaded from the store at start, then fed by stored AlarmsUpdated), so a /ws
snapshot, the banner's counts and the escalation timer never query the database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, Field, JsonValue

from aggregator.store.alarms import AlarmChange
from aggregator.store.rows import AlarmStateRow
from protocol import AlarmDefinition, UodDescription

StateName = Literal[
    "normal", "unack_active", "ack_active", "rtn_unack", "shelved", "suppressed", "out_of_service"
]
PriorityName = Literal["low", "medium", "high", "urgent"]


class AlarmView(BaseModel):
    """One alarm of a unit: its definition and its current state."""

    unit_id: str
    name: str
    state: StateName = "normal"
    active: bool = False
    priority: PriorityName = "medium"
    message: str = ""
    kind: str = "condition"
    condition: str = ""
    tag: str | None = None
    time: float | None = Field(default=None, description="the latest transition; null: none yet")
    unack_since: float | None = Field(
        default=None, description="unacknowledged since (escalation counts from here)"
    )
    user: str | None = Field(default=None, description="who made the latest transition")
    comment: str | None = Field(default=None, description="their comment, or the reason")
    value: JsonValue = Field(default=None, description="the process value at the transition")
    shelved_until: float | None = None
    max_shelve_minutes: float = Field(default=0.0, description="0: it cannot be shelved")
    escalation_minutes: float | None = None
    declared: bool = Field(default=True, description="false: the unit's UOD no longer has it")


def alarm_view(
    unit_id: str, definition: AlarmDefinition | None, state: AlarmStateRow | None
) -> AlarmView:
    fields: dict[str, Any] = {"unit_id": unit_id}
    if definition is not None:
        fields.update(
            name=definition.name,
            priority=definition.priority.value,
            message=definition.message,
            kind=definition.kind.value,
            condition=definition.condition,
            tag=definition.tag,
            max_shelve_minutes=definition.max_shelve_minutes,
            escalation_minutes=definition.escalation_minutes,
        )
    else:
        fields["declared"] = False
    if state is not None:
        for key in (
            "name",
            "state",
            "active",
            "priority",
            "time",
            "unack_since",
            "user",
            "comment",
            "value",
            "shelved_until",
        ):
            fields[key] = getattr(state, key)
        fields["message"] = state.message or fields.get("message", "")
    return AlarmView.model_validate(fields)


class AlarmBook:
    def __init__(self) -> None:
        self._units: dict[str, dict[str, AlarmStateRow]] = {}

    def load(self, rows: list[AlarmStateRow]) -> None:
        for row in rows:
            self._units.setdefault(row.unit_id, {})[row.name] = row

    def apply(self, change: AlarmChange) -> list[str]:
        """Take a stored change; returns the names it touched (removed ones included)."""
        unit = self._units.setdefault(change.engine_id, {})
        if change.snapshot:
            unit.clear()
        for row in change.current:
            unit[row.name] = row
        return [*(r.name for r in change.current), *change.removed]

    def remove(self, unit_id: str, names: list[str]) -> None:
        unit = self._units.get(unit_id, {})
        for name in names:
            unit.pop(name, None)

    def state(self, unit_id: str, name: str) -> AlarmStateRow | None:
        return self._units.get(unit_id, {}).get(name)

    def names(self, unit_id: str) -> list[str]:
        return list(self._units.get(unit_id, {}))

    def states(self) -> Iterator[AlarmStateRow]:
        for unit in self._units.values():
            yield from unit.values()

    def mark_escalated(self, unit_id: str, name: str, since: float, step: int) -> bool:
        state = self.state(unit_id, name)
        if state is None or state.unack_since != since:
            return False
        self._units[unit_id][name] = replace(state, escalated=step)
        return True

    def view(self, unit_id: str, name: str, uod: UodDescription | None) -> AlarmView | None:
        definition = _definition(uod, name)
        state = self.state(unit_id, name)
        if definition is None and state is None:
            return None
        return alarm_view(unit_id, definition, state)

    def unit_views(self, unit_id: str, uod: UodDescription | None) -> list[AlarmView]:
        """Every alarm the UOD declares (normal until reported), then any it no longer does."""
        held = self._units.get(unit_id, {})
        views = [alarm_view(unit_id, d, held.get(d.name)) for d in (uod.alarms if uod else [])]
        declared = {v.name for v in views}
        views += [
            alarm_view(unit_id, None, s) for n, s in sorted(held.items()) if n not in declared
        ]
        return views


def _definition(uod: UodDescription | None, name: str) -> AlarmDefinition | None:
    if uod is None:
        return None
    return next((a for a in uod.alarms if a.name == name), None)
