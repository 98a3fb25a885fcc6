"""An alarm as the UOD declares it (uod.alarm, uod.deviation_alarm, uod.discrete_alarm)."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.models import AlarmDefinition, AlarmKind, AlarmPriority

DEFAULT_MAX_SHELVE_MINUTES = 60.0


@dataclass(frozen=True)
class AlarmSpec:
    """`condition` is the P-code condition of a condition alarm; the other kinds are described
    by `tag` (the process value), `setpoint_tag` and `limit` (deviation: |tag - setpoint| above
    limit, in the tag's unit) or `bad_choices` (discrete: the choice tag holds one of them)."""

    name: str
    kind: AlarmKind
    condition: str
    priority: AlarmPriority = AlarmPriority.MEDIUM
    message: str = ""
    tag: str | None = None
    delay: float = 0.0
    off_delay: float = 0.0
    deadband: float | None = None
    max_shelve_minutes: float = DEFAULT_MAX_SHELVE_MINUTES
    escalation_minutes: float | None = None
    suppress_when: str | None = None
    setpoint_tag: str | None = None
    limit: float | None = None
    bad_choices: tuple[str, ...] = ()
    line: int | None = None

    def describe(self) -> AlarmDefinition:
        return AlarmDefinition(
            name=self.name,
            kind=self.kind,
            priority=self.priority,
            message=self.message,
            condition=self.condition,
            tag=self.tag,
            delay=self.delay,
            off_delay=self.off_delay,
            deadband=self.deadband,
            max_shelve_minutes=self.max_shelve_minutes,
            escalation_minutes=self.escalation_minutes,
            suppress_when=self.suppress_when,
        )


def deviation_text(tag: str, setpoint_tag: str, limit: float, unit: str | None) -> str:
    suffix = f" {unit}" if unit else ""
    return f"|{tag} - {setpoint_tag}| > {limit:g}{suffix}"


def discrete_text(tag: str, bad_choices: tuple[str, ...]) -> str:
    return f"{tag} = {' or '.join(bad_choices)}"
