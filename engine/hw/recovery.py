"""Sans-I/O connection recovery: decides when to mask, reconnect and give up.

Kept free of sockets and clocks so that the whole OK -> Issue -> Reconnect -> Error path can be
tested by feeding `now` values; each driver's I/O shell feeds it results and obeys its actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.hw.base import ConnectionChanged, ConnectionState


class RecoveryPolicy(BaseModel):
    """Timings of the recovery machine, in seconds of the driver clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reconnect_after: float = Field(
        default=1.0, ge=0, description="time in Issue before the connection is rebuilt"
    )
    issue_errors: int = Field(
        default=3, ge=1, description="consecutive errors in Issue that force a reconnect"
    )
    error_after: float = Field(
        default=30.0, gt=0, description="time since the first failure before Error"
    )
    backoff_initial: float = Field(default=0.2, gt=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_max: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RecoveryPolicy:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")
        if self.error_after < self.reconnect_after:
            # Error before the first reconnect would report a fault that a reconnect might fix.
            raise ValueError("error_after must be >= reconnect_after")
        return self

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_initial * self.backoff_factor**attempt)


class Action(StrEnum):
    NONE = "none"
    RECONNECT = "reconnect"


@dataclass
class RecoveryMachine:
    """Connection state of one device or port.

    Event messages do not repeat `source`; each `ConnectionChanged` carries it in its own field.

    The shell calls `on_success` / `on_error` after each exchange or reconnect attempt and
    `poll` regularly; when `poll` returns RECONNECT the shell closes the link and tries once.
    """

    source: str
    policy: RecoveryPolicy = field(default_factory=RecoveryPolicy)
    state: ConnectionState = ConnectionState.OK
    first_failure: float | None = None
    last_message: str = ""
    errors_in_issue: int = 0
    attempt: int = 0
    next_attempt: float | None = None
    _events: list[ConnectionChanged] = field(default_factory=list)

    @property
    def masking(self) -> bool:
        return self.state in (ConnectionState.ISSUE, ConnectionState.RECONNECT)

    @property
    def link_down(self) -> bool:
        """True while the shell must not use the link except for reconnect attempts."""
        return self.state in (ConnectionState.RECONNECT, ConnectionState.ERROR)

    def _go(self, new: ConnectionState, now: float, message: str) -> None:
        if new is self.state:
            return
        self._events.append(ConnectionChanged(self.state, new, message, now, self.source))
        self.state = new

    def on_success(self, now: float) -> None:
        if self.state is not ConnectionState.OK:
            down = now - self.first_failure if self.first_failure is not None else 0.0
            self._go(ConnectionState.OK, now, f"connection restored after {down:.1f} s")
        self.first_failure = None
        self.errors_in_issue = 0
        self.attempt = 0
        self.next_attempt = None

    def on_error(self, now: float, message: str) -> None:
        self.last_message = message
        if self.state is ConnectionState.OK:
            self.first_failure = now
            self.errors_in_issue = 1
            self._go(ConnectionState.ISSUE, now, message)
            return
        if self.state is ConnectionState.ISSUE:
            self.errors_in_issue += 1
            return
        self.next_attempt = now + self.policy.backoff(self.attempt)
        self.attempt += 1
        self._check_error(now)

    def on_connection_lost(self, now: float, message: str) -> None:
        """A broken link cannot recover by retrying requests: skip straight to reconnecting."""
        self.on_error(now, message)
        if self.state is ConnectionState.ISSUE:
            self._start_reconnect(now)

    def on_fault(self, now: float, message: str) -> None:
        """The driver itself failed (an unexpected exception in its worker): nothing it read
        can be trusted, so straight to Error (the run pauses); reconnect after the backoff."""
        self.last_message = message
        if self.first_failure is None:
            self.first_failure = now
        self.next_attempt = now + self.policy.backoff(self.attempt)
        self.attempt += 1
        self._go(ConnectionState.ERROR, now, message)

    def _start_reconnect(self, now: float) -> None:
        self.attempt = 0
        self.next_attempt = now
        self._go(ConnectionState.RECONNECT, now, f"reconnecting after: {self.last_message}")

    def _check_error(self, now: float) -> None:
        if (
            self.state is not ConnectionState.ERROR
            and self.first_failure is not None
            and now - self.first_failure >= self.policy.error_after
        ):
            if self.next_attempt is None:
                # Entered straight from Issue (a late poll) or while an attempt was in flight:
                # without a deadline `poll` would never ask for a reconnect again and the shell
                # would sleep forever.
                self.next_attempt = now + self.policy.backoff(self.attempt)
            self._go(
                ConnectionState.ERROR,
                now,
                f"no connection for {now - self.first_failure:.1f} s; "
                f"last error: {self.last_message}",
            )

    def poll(self, now: float) -> Action:
        if self.state is ConnectionState.OK:
            return Action.NONE
        self._check_error(now)
        if self.state is ConnectionState.ISSUE:
            assert self.first_failure is not None
            if (
                now - self.first_failure >= self.policy.reconnect_after
                or self.errors_in_issue >= self.policy.issue_errors
            ):
                self._start_reconnect(now)
            else:
                return Action.NONE
        if self.next_attempt is not None and now >= self.next_attempt:
            self.next_attempt = None
            return Action.RECONNECT
        return Action.NONE

    def next_deadline(self) -> float | None:
        """When `poll` may next have something to do, so the shell can sleep until then."""
        if self.state is ConnectionState.OK or self.first_failure is None:
            return None
        if self.state is ConnectionState.ERROR:
            return self.next_attempt
        candidates = [self.first_failure + self.policy.error_after]
        if self.state is ConnectionState.ISSUE:
            candidates.append(self.first_failure + self.policy.reconnect_after)
        if self.next_attempt is not None:
            candidates.append(self.next_attempt)
        return min(candidates)

    def drain_events(self) -> list[ConnectionChanged]:
        events, self._events = self._events, []
        return events
