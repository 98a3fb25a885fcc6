"""What each person wants to hear about, and the events they can hear about.

Sans-I/O: `wants` decides from a person's choices whether an event reaches them; who may see the
unit at all is checked by the caller (the same rule as the HTTP API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol import AlarmPriority

PRIORITY_RANK = {p.value: i for i, p in enumerate(AlarmPriority)}

EventKind = Literal[
    "alarm",
    "run_started",
    "run_stopped",
    "run_paused",
    "method_error",
    "offline",
    "notify",
    "escalation",
]


class NotifyRule(BaseModel):
    """One unit's (or every unit's) events that should reach the person."""

    model_config = ConfigDict(extra="forbid")

    unit_id: str | None = Field(
        default=None, max_length=256, description="null: every unit the person may see"
    )
    alarm_priority: AlarmPriority | None = Field(
        default=None, description="alarms raised at this priority or above; null: no alarms"
    )
    run_started: bool = False
    run_stopped: bool = False
    run_paused: bool = False
    method_error: bool = Field(default=False, description="the method stopped on an error")
    offline_seconds: float | None = Field(
        default=None,
        ge=0,
        le=7 * 86400,
        allow_inf_nan=False,
        description="the unit has been offline this long; null: never",
    )
    notify_lines: bool = Field(default=False, description="`Notify:` lines of the method")


class NotificationPrefs(BaseModel):
    """A person's choices: the channels, and the rules (an event reaches them when any rule for
    its unit, or for every unit, asks for it)."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+$",
        description="address for e-mail notifications",
    )
    email_enabled: bool = False
    web_push_enabled: bool = Field(
        default=False, description="to every browser this person subscribed for web push"
    )
    rules: list[NotifyRule] = Field(default_factory=list, max_length=200)


@dataclass(frozen=True)
class Event:
    """Something that happened on a unit that people may be notified of."""

    kind: EventKind
    unit_id: str
    title: str
    body: str
    priority: str | None = None
    """An alarm's priority (alarm, escalation)."""
    offline_for: float = 0.0
    tag: str = ""
    """Groups notifications of one thing (web push `tag`: a newer one replaces the older)."""


def _rule_wants(rule: NotifyRule, event: Event) -> bool:
    kind = event.kind
    if kind == "alarm":
        return (
            rule.alarm_priority is not None
            and event.priority is not None
            and PRIORITY_RANK.get(event.priority, -1) >= PRIORITY_RANK[rule.alarm_priority.value]
        )
    if kind == "offline":
        return rule.offline_seconds is not None and event.offline_for >= rule.offline_seconds
    flags = {
        "run_started": rule.run_started,
        "run_stopped": rule.run_stopped,
        "run_paused": rule.run_paused,
        "method_error": rule.method_error,
        "notify": rule.notify_lines,
    }
    return flags.get(kind, False)


def wants(prefs: NotificationPrefs, event: Event) -> bool:
    """Escalations are not chosen: they follow the unit's escalation list (the caller)."""
    return any(
        rule.unit_id in (None, event.unit_id) and _rule_wants(rule, event) for rule in prefs.rules
    )


def offline_thresholds(prefs: NotificationPrefs, unit_id: str) -> list[float]:
    return sorted(
        {
            rule.offline_seconds
            for rule in prefs.rules
            if rule.offline_seconds is not None and rule.unit_id in (None, unit_id)
        }
    )
