"""A unit's alarms bound to its tags: compiled once, evaluated every scan.

`compile_alarm` is shared by the UOD check (engine/uod/checks.py) and the engine, so an alarm
that loads is one the engine can evaluate: its conditions parse, name known tags in compatible
units, and its deadband has a limit to apply to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from engine.alarms.machine import AlarmActionError, AlarmConfig, AlarmMachine
from engine.alarms.spec import AlarmSpec
from engine.lang.conditions import (
    Condition,
    ConditionProblem,
    ParsedCondition,
    TagInfo,
    check_condition,
    split_condition,
)
from engine.lang.units import Registry
from engine.tags import TagSpec
from protocol.models import AlarmAction, AlarmEvent, AlarmKind, ScalarValue

Read = Callable[[str], ScalarValue]
_NUMERIC_KINDS = ("reading", "entry", "calculated", "accumulator")


def tag_info_of(specs: Iterable[TagSpec]) -> TagInfo:
    by_name = {spec.name: spec for spec in specs}

    def unit(name: str) -> str | None:
        spec = by_name.get(name)
        return spec.unit if spec else None

    def choices(name: str) -> Sequence[str] | None:
        spec = by_name.get(name)
        return list(spec.choices) if spec and spec.choices else None

    return TagInfo(list(by_name), unit, choices)


@dataclass(frozen=True)
class CompiledAlarm:
    spec: AlarmSpec
    machine: AlarmMachine
    condition: Condition | None  # condition alarms
    suppress: Condition | None

    def evaluate(self, read: Read) -> tuple[bool, ScalarValue]:
        """Whether the alarm condition holds now, and the process value to show with it."""
        spec = self.spec
        if self.condition is not None:
            value = read(self.condition.tag)
            return self.condition.holds(value), value
        value = read(spec.tag or "")
        if spec.kind is AlarmKind.DEVIATION:
            pv, setpoint = _number(value), _number(read(spec.setpoint_tag or ""))
            if pv is None or setpoint is None:
                return False, value
            return abs(pv - setpoint) > (spec.limit or 0.0), value
        return value in spec.bad_choices, value

    def suppressed(self, read: Read) -> bool:
        return self.suppress is not None and self.suppress.holds(read(self.suppress.tag))


def _number(value: ScalarValue) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def compile_alarm(
    spec: AlarmSpec, tags: TagInfo, specs: dict[str, TagSpec], ureg: Registry
) -> CompiledAlarm | str:
    """The alarm ready to evaluate, or one line saying what is wrong with its declaration."""
    condition: Condition | None = None
    limit, high = spec.limit, True
    if spec.kind is AlarmKind.CONDITION:
        compiled = check_condition(spec.condition, tags, ureg)
        if isinstance(compiled, ConditionProblem):
            return f"alarm {spec.name!r}: condition {spec.condition!r}: {compiled.message}"
        condition = compiled
        parsed = split_condition(spec.condition)
        op = parsed.op if isinstance(parsed, ParsedCondition) else ""
        if spec.deadband is not None:
            if not compiled.numeric or op not in ("<", "<=", ">", ">="):
                return (
                    f"alarm {spec.name!r}: a deadband needs a numeric condition with <, <=, > "
                    f"or >= (not {spec.condition!r})"
                )
            limit, high = float(compiled.target), op.startswith(">")
    else:
        problem = _tag_problem(spec, specs)
        if problem:
            return f"alarm {spec.name!r}: {problem}"
    suppress: Condition | None = None
    if spec.suppress_when is not None:
        compiled = check_condition(spec.suppress_when, tags, ureg)
        if isinstance(compiled, ConditionProblem):
            return f"alarm {spec.name!r}: suppress_when {spec.suppress_when!r}: {compiled.message}"
        suppress = compiled
    config = AlarmConfig(
        name=spec.name,
        priority=spec.priority,
        message=spec.message,
        delay=spec.delay,
        off_delay=spec.off_delay,
        deadband=spec.deadband,
        limit=limit,
        high=high,
        max_shelve_minutes=spec.max_shelve_minutes,
    )
    return CompiledAlarm(spec, AlarmMachine(config), condition, suppress)


def _tag_problem(spec: AlarmSpec, specs: dict[str, TagSpec]) -> str | None:
    tag = specs.get(spec.tag or "")
    if tag is None:
        return f"unknown tag {spec.tag!r}"
    if spec.kind is AlarmKind.DISCRETE:
        if not tag.choices:
            return f"{spec.tag!r} is not a choice tag"
        if not spec.bad_choices:
            return "a discrete alarm needs at least one bad choice"
        wrong = [c for c in spec.bad_choices if c not in tag.choices]
        if wrong:
            return f"{wrong[0]!r} is not a value of {spec.tag!r} (one of: {', '.join(tag.choices)})"
        return None
    setpoint = specs.get(spec.setpoint_tag or "")
    if setpoint is None or setpoint.kind != "entry":
        return f"the setpoint {spec.setpoint_tag!r} must be an entry tag"
    if tag.kind not in _NUMERIC_KINDS or tag.choices:
        return f"{spec.tag!r} is not a numeric tag"
    if tag.unit != setpoint.unit:
        return (
            f"{spec.tag!r} is in {tag.unit or 'no unit'} but its setpoint "
            f"{spec.setpoint_tag!r} in {setpoint.unit or 'no unit'}"
        )
    if spec.limit is None or not spec.limit > 0:
        return "a deviation alarm needs a limit above 0"
    return None


class AlarmEvaluator:
    """Every alarm of a unit; the engine feeds it each scan and each operator action."""

    def __init__(self, alarms: Sequence[CompiledAlarm]) -> None:
        self.alarms = {alarm.spec.name: alarm for alarm in alarms}

    @classmethod
    def for_unit(
        cls, specs: Sequence[AlarmSpec], tags: Sequence[TagSpec], ureg: Registry
    ) -> AlarmEvaluator:
        info = tag_info_of(tags)
        by_name = {spec.name: spec for spec in tags}
        compiled: list[CompiledAlarm] = []
        for spec in specs:
            result = compile_alarm(spec, info, by_name, ureg)
            if isinstance(result, str):  # the UOD check lets no such alarm through
                raise ValueError(result)
            compiled.append(result)
        return cls(compiled)

    def scan(self, now: float, read: Read) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for alarm in self.alarms.values():
            holds, value = alarm.evaluate(read)
            suppressed = alarm.suppressed(read)
            events += alarm.machine.update(now, holds, value, suppressed=suppressed)
        return events

    def act(
        self,
        now: float,
        name: str,
        action: AlarmAction | str,
        user: str | None,
        *,
        comment: str | None = None,
        minutes: float | None = None,
        reason: str | None = None,
    ) -> AlarmEvent:
        alarm = self.alarms.get(name)
        if alarm is None:
            known = ", ".join(self.alarms) or "none"
            raise AlarmActionError(f"unknown alarm {name!r} (this unit's alarms: {known})")
        try:
            action = AlarmAction(action)
        except ValueError:
            raise AlarmActionError(f"unknown alarm action {action!r}") from None
        return alarm.machine.act(now, action, user, comment=comment, minutes=minutes, reason=reason)

    def snapshot(self, now: float, read: Read | None = None) -> list[AlarmEvent]:
        """Every alarm's state; with `read`, first primed with the suppression and value of now
        (the engine's start, before the first scan's evaluation)."""
        if read is not None:
            for alarm in self.alarms.values():
                _, value = alarm.evaluate(read)
                alarm.machine.prime(suppressed=alarm.suppressed(read), value=value)
        return [alarm.machine.snapshot(now) for alarm in self.alarms.values()]
