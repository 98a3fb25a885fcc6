"""One managed alarm's ISA-18.2 state machine, without I/O.

It is fed each scan's time, whether the alarm condition holds, the process value and whether the
alarm is suppressed by design, plus the operators' actions, and answers with the transitions
(`AlarmEvent`) these caused. The caller owns time: delays and shelve expiry are measured on the
`now` it passes, so tests drive them with a fake clock.

Three masks sit on top of the annunciation states (normal, unack_active, ack_active, rtn_unack):
out of service over suppressed over shelved. The condition is tracked under a mask too; when the
last mask goes the alarm is unack_active if its condition holds, else normal, so nothing that
happened while it was hidden is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.models import (
    AlarmAction,
    AlarmCause,
    AlarmEvent,
    AlarmPriority,
    AlarmState,
    ScalarValue,
)

_TIME_EPSILON = 1e-6  # scan times summed in floats must not miss a delay by a scan

_RAISE = {
    AlarmState.NORMAL: AlarmState.UNACK_ACTIVE,
    AlarmState.RTN_UNACK: AlarmState.UNACK_ACTIVE,
}
_CLEAR = {
    AlarmState.UNACK_ACTIVE: AlarmState.RTN_UNACK,
    AlarmState.ACK_ACTIVE: AlarmState.NORMAL,
}
_ACK = {
    AlarmState.UNACK_ACTIVE: AlarmState.ACK_ACTIVE,
    AlarmState.RTN_UNACK: AlarmState.NORMAL,
}


class AlarmActionError(Exception):
    """An operator action the alarm refuses; the message says why, in one line."""


@dataclass(frozen=True)
class AlarmConfig:
    """What the state machine needs of an alarm's definition.

    `limit` and `high` give the deadband its meaning: an alarm raised above `limit` (high) clears
    only at or below `limit - deadband`, one raised below it only at or above `limit + deadband`.
    """

    name: str
    priority: AlarmPriority = AlarmPriority.MEDIUM
    message: str = ""
    delay: float = 0.0
    off_delay: float = 0.0
    deadband: float | None = None
    limit: float | None = None
    high: bool = True
    max_shelve_minutes: float = 60.0


class AlarmMachine:
    def __init__(self, config: AlarmConfig) -> None:
        self.config = config
        self._base = AlarmState.NORMAL
        self._active = False
        self._pending_since: float | None = None
        self._shelved_until: float | None = None
        self._suppressed = False
        self._out_of_service = False
        self._value: ScalarValue = None

    @property
    def state(self) -> AlarmState:
        if self._out_of_service:
            return AlarmState.OUT_OF_SERVICE
        if self._suppressed:
            return AlarmState.SUPPRESSED
        if self._shelved_until is not None:
            return AlarmState.SHELVED
        return self._base

    @property
    def active(self) -> bool:
        return self._active

    @property
    def shelved_until(self) -> float | None:
        return self._shelved_until

    def snapshot(self, now: float) -> AlarmEvent:
        state = self.state
        return self._event(state, now, AlarmCause.SNAPSHOT)

    def prime(self, *, suppressed: bool, value: ScalarValue) -> None:
        """The state the engine starts in, before its first snapshot: an alarm suppressed by
        design from the start is reported suppressed, not as a transition a moment later."""
        self._suppressed = suppressed
        self._value = value

    # ---- each scan --------------------------------------------------------------------------

    def update(
        self, now: float, condition: bool, value: ScalarValue, *, suppressed: bool = False
    ) -> list[AlarmEvent]:
        """One scan: shelve expiry, suppression by design, then the condition through the
        deadband and the on- and off-delays."""
        self._value = value
        events: list[AlarmEvent] = []
        if self._shelved_until is not None and now >= self._shelved_until - _TIME_EPSILON:
            before = self.state
            self._shelved_until = None
            self._unmasked()
            events.append(self._event(before, now, AlarmCause.SHELVE_EXPIRED))
        if suppressed != self._suppressed:
            before = self.state
            self._suppressed = suppressed
            self._unmasked()
            cause = AlarmCause.SUPPRESSED if suppressed else AlarmCause.UNSUPPRESSED
            events.append(self._event(before, now, cause))
        wanted = condition or (self._active and self._within_deadband(value))
        if wanted == self._active:
            self._pending_since = None
            return events
        if self._pending_since is None:
            self._pending_since = now
        delay = self.config.delay if wanted else self.config.off_delay
        if now - self._pending_since < delay - _TIME_EPSILON:
            return events
        before = self.state
        self._pending_since = None
        self._active = wanted
        table = _RAISE if wanted else _CLEAR
        self._base = table.get(self._base, self._base)
        events.append(self._event(before, now, AlarmCause.CONDITION))
        return events

    def _within_deadband(self, value: ScalarValue) -> bool:
        """Still inside the deadband of an active alarm whose condition no longer holds."""
        band, limit = self.config.deadband, self.config.limit
        if not band or limit is None or isinstance(value, bool):
            return False
        if not isinstance(value, int | float):
            return False
        return value > limit - band if self.config.high else value < limit + band

    def _unmasked(self) -> None:
        """Whatever happened under a mask, the alarm comes back as if newly evaluated."""
        if self.state in (AlarmState.OUT_OF_SERVICE, AlarmState.SUPPRESSED, AlarmState.SHELVED):
            return
        self._base = AlarmState.UNACK_ACTIVE if self._active else AlarmState.NORMAL

    # ---- operator actions -------------------------------------------------------------------

    def act(
        self,
        now: float,
        action: AlarmAction,
        user: str | None,
        *,
        comment: str | None = None,
        minutes: float | None = None,
        reason: str | None = None,
    ) -> AlarmEvent:
        """Carry out an operator's action; AlarmActionError says why one is not allowed."""
        before = self.state
        name = self.config.name
        if action is AlarmAction.ACK:
            if before not in _ACK:
                raise AlarmActionError(
                    f"alarm {name!r} is {before.value}: only an unacknowledged alarm "
                    "(unack_active, rtn_unack) can be acknowledged"
                )
            self._base = _ACK[before]
            return self._event(before, now, AlarmCause.ACK, user, comment)
        if action is AlarmAction.SHELVE:
            until = now + 60.0 * self._shelve_minutes(minutes, reason)
            self._shelved_until = until
            return self._event(before, now, AlarmCause.SHELVE, user, _note(reason, comment))
        if action is AlarmAction.UNSHELVE:
            if self._shelved_until is None:
                raise AlarmActionError(f"alarm {name!r} is not shelved")
            self._shelved_until = None
            self._unmasked()
            return self._event(before, now, AlarmCause.UNSHELVE, user, comment)
        if action is AlarmAction.OUT_OF_SERVICE:
            if self._out_of_service:
                raise AlarmActionError(f"alarm {name!r} is already out of service")
            if not (reason or "").strip():
                raise AlarmActionError(f"taking alarm {name!r} out of service needs a reason")
            self._out_of_service = True
            self._shelved_until = None
            return self._event(before, now, AlarmCause.OUT_OF_SERVICE, user, _note(reason, comment))
        if action is AlarmAction.RETURN_TO_SERVICE:
            if not self._out_of_service:
                raise AlarmActionError(f"alarm {name!r} is not out of service")
            self._out_of_service = False
            self._unmasked()
            return self._event(before, now, AlarmCause.RETURN_TO_SERVICE, user, comment)
        raise AlarmActionError(f"unknown alarm action {action!r}")

    def _shelve_minutes(self, minutes: float | None, reason: str | None) -> float:
        name, most = self.config.name, self.config.max_shelve_minutes
        if self._out_of_service:
            raise AlarmActionError(
                f"alarm {name!r} is out of service; return it to service before shelving it"
            )
        if most <= 0:
            raise AlarmActionError(f"alarm {name!r} cannot be shelved (its UOD forbids it)")
        if not (reason or "").strip():
            raise AlarmActionError(f"shelving alarm {name!r} needs a reason")
        if minutes is None or not minutes > 0:
            raise AlarmActionError(f"shelving alarm {name!r} needs a duration in minutes")
        if minutes > most:
            raise AlarmActionError(
                f"alarm {name!r} can be shelved for at most {most:g} minutes, not {minutes:g}"
            )
        return minutes

    def _event(
        self,
        previous: AlarmState,
        now: float,
        cause: AlarmCause,
        user: str | None = None,
        comment: str | None = None,
    ) -> AlarmEvent:
        return AlarmEvent(
            name=self.config.name,
            state=self.state,
            previous=previous,
            active=self._active,
            time=now,
            cause=cause,
            user=user,
            comment=comment,
            value=self._value,
            shelved_until=self._shelved_until,
            priority=self.config.priority,
            message=self.config.message,
        )


def _note(reason: str | None, comment: str | None) -> str | None:
    """The reason of a shelve or out-of-service, with the comment if there is one as well."""
    parts = [text.strip() for text in (reason, comment) if text and text.strip()]
    return "; ".join(parts) or None
