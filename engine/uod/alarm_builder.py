"""The alarm declarations of the UOD builder (`uod.alarm`, `uod.deviation_alarm`,
`uod.discrete_alarm`); they only record, `engine.uod.checks.alarms` validates at build."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from engine.alarms.spec import (
    DEFAULT_MAX_SHELVE_MINUTES,
    AlarmSpec,
    deviation_text,
    discrete_text,
)
from engine.lang.conditions import ParsedCondition, split_condition
from engine.uod.draft import Draft
from protocol.models import AlarmKind, AlarmPriority

_PRIORITIES = ", ".join(p.value for p in AlarmPriority)


class AlarmDeclarations:
    """Mixed into UodBuilder; `_line()` is the UOD file's line of the call being made."""

    _d: Draft

    def _line(self) -> int | None:
        raise NotImplementedError

    def alarm(
        self,
        name: str,
        condition: str,
        *,
        priority: str = "medium",
        delay: float = 0.0,
        off_delay: float = 0.0,
        deadband: float | None = None,
        message: str = "",
        max_shelve_minutes: float = DEFAULT_MAX_SHELVE_MINUTES,
        escalation_minutes: float | None = None,
        suppress_when: str | None = None,
    ) -> Self:
        """An alarm active while a P-code condition holds (`"PT01 > 3 bar"`), raised after it
        held `delay` s, cleared after it stopped holding for `off_delay` s and, with a
        `deadband`, only once the value is that far back from the limit."""
        line = self._line()
        parsed = split_condition(condition)
        return self._alarm(
            AlarmSpec(
                name=name,
                kind=AlarmKind.CONDITION,
                condition=condition,
                priority=self._priority(priority, line),
                message=message,
                tag=parsed.tag if isinstance(parsed, ParsedCondition) else None,
                delay=delay,
                off_delay=off_delay,
                deadband=deadband,
                max_shelve_minutes=max_shelve_minutes,
                escalation_minutes=escalation_minutes,
                suppress_when=suppress_when,
                line=line,
            )
        )

    def deviation_alarm(
        self,
        entry_tag: str,
        pv_tag: str,
        limit: float,
        *,
        name: str | None = None,
        priority: str = "medium",
        delay: float = 0.0,
        off_delay: float = 0.0,
        deadband: float | None = None,
        message: str = "",
        max_shelve_minutes: float = DEFAULT_MAX_SHELVE_MINUTES,
        escalation_minutes: float | None = None,
        suppress_when: str | None = None,
    ) -> Self:
        """An alarm active while the process value `pv_tag` is more than `limit` (in its unit)
        away from the setpoint in the entry tag `entry_tag`."""
        line = self._line()
        spec = self._d.tags.get(pv_tag)
        return self._alarm(
            AlarmSpec(
                name=name or f"{pv_tag} deviation",
                kind=AlarmKind.DEVIATION,
                condition=deviation_text(pv_tag, entry_tag, limit, spec.unit if spec else None),
                priority=self._priority(priority, line),
                message=message,
                tag=pv_tag,
                delay=delay,
                off_delay=off_delay,
                deadband=deadband,
                max_shelve_minutes=max_shelve_minutes,
                escalation_minutes=escalation_minutes,
                suppress_when=suppress_when,
                setpoint_tag=entry_tag,
                limit=limit,
                line=line,
            )
        )

    def discrete_alarm(
        self,
        tag: str,
        bad_choices: Sequence[str] | str,
        *,
        name: str | None = None,
        priority: str = "medium",
        delay: float = 0.0,
        off_delay: float = 0.0,
        message: str = "",
        max_shelve_minutes: float = DEFAULT_MAX_SHELVE_MINUTES,
        escalation_minutes: float | None = None,
        suppress_when: str | None = None,
    ) -> Self:
        """An alarm active while the choice tag `tag` holds one of `bad_choices`."""
        line = self._line()
        bad = (bad_choices,) if isinstance(bad_choices, str) else tuple(bad_choices)
        return self._alarm(
            AlarmSpec(
                name=name or f"{tag} {' or '.join(bad)}",
                kind=AlarmKind.DISCRETE,
                condition=discrete_text(tag, bad),
                priority=self._priority(priority, line),
                message=message,
                tag=tag,
                delay=delay,
                off_delay=off_delay,
                max_shelve_minutes=max_shelve_minutes,
                escalation_minutes=escalation_minutes,
                suppress_when=suppress_when,
                bad_choices=bad,
                line=line,
            )
        )

    def _priority(self, priority: str, line: int | None) -> AlarmPriority:
        try:
            return AlarmPriority(priority)
        except ValueError:
            self._d.problems.append(
                (line, f"alarm priority {priority!r} is not one of {_PRIORITIES}")
            )
            return AlarmPriority.MEDIUM

    def _alarm(self, spec: AlarmSpec) -> Self:
        if any(existing.name == spec.name for existing in self._d.alarms):
            self._d.problems.append((spec.line, f"alarm {spec.name!r} is declared twice"))
        self._d.alarms.append(spec)
        return self
