"""The ISA-18.2 alarm state machine on its own: every transition, driven by a fake clock."""

from __future__ import annotations

import pytest

from engine.alarms import AlarmActionError, AlarmConfig, AlarmMachine
from engine.clock import FakeClock
from protocol.models import AlarmAction, AlarmCause, AlarmEvent, AlarmState

S = AlarmState
A = AlarmAction


class Driven:
    """One machine, a fake clock and the events so far; `feed` runs scans of 0.1 s."""

    def __init__(self, **config: object) -> None:
        self.clock = FakeClock(start=0.0)
        self.machine = AlarmMachine(AlarmConfig(name="PT01 high", **config))  # type: ignore[arg-type]
        self.events: list[AlarmEvent] = []

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def state(self) -> AlarmState:
        return self.machine.state

    def feed(
        self, condition: bool, value: float = 0.0, *, seconds: float = 0.0, suppressed: bool = False
    ) -> list[AlarmEvent]:
        """One scan now, then one every 0.1 s for `seconds`; the events they caused."""
        new = self.machine.update(self.now, condition, value, suppressed=suppressed)
        for _ in range(round(seconds / 0.1)):
            self.clock.advance(0.1)
            new += self.machine.update(self.now, condition, value, suppressed=suppressed)
        self.events += new
        return new

    def act(self, action: AlarmAction, **kwargs: object) -> AlarmEvent:
        event = self.machine.act(self.now, action, "ann", **kwargs)  # type: ignore[arg-type]
        self.events.append(event)
        return event


def _transitions(events: list[AlarmEvent]) -> list[tuple[str, str, str]]:
    return [(e.previous.value, e.state.value, e.cause.value) for e in events]


def test_raise_ack_clear() -> None:
    d = Driven()
    assert d.feed(False) == []
    [raised] = d.feed(True, 4.2)
    assert (raised.previous, raised.state, raised.active, raised.value) == (
        S.NORMAL,
        S.UNACK_ACTIVE,
        True,
        4.2,
    )
    ack = d.act(A.ACK, comment="seen it")
    assert (ack.state, ack.cause, ack.user, ack.comment) == (
        S.ACK_ACTIVE,
        AlarmCause.ACK,
        "ann",
        "seen it",
    )
    [cleared] = d.feed(False)
    assert (cleared.state, cleared.active) == (S.NORMAL, False)


def test_return_to_normal_unacknowledged_then_ack() -> None:
    d = Driven()
    d.feed(True)
    d.feed(False)
    assert d.state() is S.RTN_UNACK
    d.act(A.ACK)
    assert d.state() is S.NORMAL
    assert _transitions(d.events) == [
        ("normal", "unack_active", "condition"),
        ("unack_active", "rtn_unack", "condition"),
        ("rtn_unack", "normal", "ack"),
    ]


def test_returned_alarm_that_comes_back_is_unacknowledged_again() -> None:
    d = Driven()
    d.feed(True)
    d.feed(False)
    d.feed(True)
    assert d.state() is S.UNACK_ACTIVE


def test_on_delay_raises_only_after_the_condition_held_long_enough() -> None:
    d = Driven(delay=2.0)
    assert d.feed(True, seconds=1.9) == []
    assert d.state() is S.NORMAL
    [raised] = d.feed(True, seconds=0.1)
    assert raised.state is S.UNACK_ACTIVE
    assert raised.time == pytest.approx(2.0)


def test_on_delay_restarts_when_the_condition_drops_in_between() -> None:
    d = Driven(delay=2.0)
    d.feed(True, seconds=1.5)
    d.clock.advance(0.1)
    d.feed(False)
    d.clock.advance(0.1)
    assert d.feed(True, seconds=1.9) == []
    assert d.state() is S.NORMAL
    d.feed(True, seconds=0.1)
    assert d.state() is S.UNACK_ACTIVE


def test_off_delay_keeps_the_alarm_active_until_clear_long_enough() -> None:
    d = Driven(off_delay=1.0)
    d.feed(True)
    d.act(A.ACK)
    d.clock.advance(0.1)
    assert d.feed(False, seconds=0.9) == []
    assert d.state() is S.ACK_ACTIVE
    [cleared] = d.feed(False, seconds=0.1)
    assert cleared.state is S.NORMAL


def test_deadband_clears_only_beyond_the_band() -> None:
    d = Driven(deadband=0.2, limit=3.0, high=True)
    d.feed(True, 3.1)
    d.feed(False, 2.9)  # below the limit, still inside the band
    assert d.state() is S.UNACK_ACTIVE and d.machine.active
    d.feed(False, 2.8)  # at limit - deadband: out of the band
    assert d.state() is S.RTN_UNACK


def test_low_alarm_deadband_is_above_the_limit() -> None:
    d = Driven(deadband=1.0, limit=10.0, high=False)
    d.feed(True, 9.0)
    d.feed(False, 10.5)
    assert d.machine.active
    d.feed(False, 11.0)
    assert not d.machine.active


def test_deadband_with_no_value_clears_on_the_condition() -> None:
    d = Driven(deadband=0.2, limit=3.0)
    d.feed(True, 3.5)
    assert d.machine.update(d.now, False, None) != []
    assert not d.machine.active


def test_shelve_hides_the_alarm_until_it_expires() -> None:
    d = Driven(max_shelve_minutes=30)
    d.feed(True)
    shelved = d.act(A.SHELVE, minutes=10, reason="sensor being replaced", comment="ticket 12")
    assert shelved.state is S.SHELVED
    assert shelved.shelved_until == pytest.approx(600.0)
    assert shelved.comment == "sensor being replaced; ticket 12"
    assert d.feed(True, seconds=599.9) == []
    [expired] = d.feed(True, seconds=0.1)
    assert (expired.previous, expired.state, expired.cause) == (
        S.SHELVED,
        S.UNACK_ACTIVE,
        AlarmCause.SHELVE_EXPIRED,
    )
    assert expired.shelved_until is None


def test_shelve_expiry_of_a_cleared_alarm_returns_to_normal() -> None:
    d = Driven()
    d.feed(True)
    d.act(A.SHELVE, minutes=1, reason="maintenance")
    d.clock.advance(1)
    [cleared] = d.feed(False)
    assert (cleared.state, cleared.active) == (S.SHELVED, False)
    [expired] = d.feed(False, seconds=60)
    assert expired.state is S.NORMAL


def test_unshelve_by_hand() -> None:
    d = Driven()
    d.act(A.SHELVE, minutes=5, reason="noisy")
    event = d.act(A.UNSHELVE)
    assert (event.previous, event.state, event.cause) == (S.SHELVED, S.NORMAL, AlarmCause.UNSHELVE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"minutes": 5}, "shelving alarm 'PT01 high' needs a reason"),
        ({"minutes": 5, "reason": "  "}, "needs a reason"),
        ({"reason": "noisy"}, "needs a duration in minutes"),
        ({"minutes": 61, "reason": "noisy"}, "at most 60 minutes, not 61"),
    ],
)
def test_shelve_refusals(kwargs: dict[str, object], message: str) -> None:
    d = Driven()
    with pytest.raises(AlarmActionError, match=message):
        d.act(A.SHELVE, **kwargs)
    assert d.state() is S.NORMAL


def test_alarm_that_cannot_be_shelved() -> None:
    d = Driven(max_shelve_minutes=0)
    with pytest.raises(AlarmActionError, match="cannot be shelved"):
        d.act(A.SHELVE, minutes=1, reason="x")


def test_suppressed_by_design_and_back() -> None:
    d = Driven()
    [suppressed] = d.feed(False, suppressed=True)
    assert (suppressed.state, suppressed.cause) == (S.SUPPRESSED, AlarmCause.SUPPRESSED)
    [raised_hidden] = d.feed(True, suppressed=True)
    assert (raised_hidden.state, raised_hidden.active) == (S.SUPPRESSED, True)
    [back] = d.feed(True, suppressed=False)
    assert (back.previous, back.state, back.cause) == (
        S.SUPPRESSED,
        S.UNACK_ACTIVE,
        AlarmCause.UNSUPPRESSED,
    )


def test_suppression_ends_in_normal_when_the_condition_is_gone() -> None:
    d = Driven()
    d.feed(True)
    d.feed(True, suppressed=True)
    d.feed(False, suppressed=True)
    [back] = d.feed(False)
    assert back.state is S.NORMAL


def test_acknowledging_a_suppressed_or_shelved_alarm_is_refused() -> None:
    d = Driven()
    d.feed(True, suppressed=True)
    with pytest.raises(AlarmActionError, match="is suppressed: only an unacknowledged alarm"):
        d.act(A.ACK)


def test_out_of_service_and_return_to_service() -> None:
    d = Driven()
    d.feed(True)
    with pytest.raises(AlarmActionError, match="out of service needs a reason"):
        d.act(A.OUT_OF_SERVICE)
    oos = d.act(A.OUT_OF_SERVICE, reason="transmitter removed")
    assert (oos.state, oos.comment) == (S.OUT_OF_SERVICE, "transmitter removed")
    assert d.feed(True, suppressed=True) != []  # suppression is recorded ...
    assert d.state() is S.OUT_OF_SERVICE  # ... but out of service wins
    with pytest.raises(AlarmActionError, match="already out of service"):
        d.act(A.OUT_OF_SERVICE, reason="again")
    with pytest.raises(AlarmActionError, match="return it to service before shelving"):
        d.act(A.SHELVE, minutes=1, reason="x")
    d.feed(True)
    back = d.act(A.RETURN_TO_SERVICE, comment="new transmitter")
    assert (back.previous, back.state, back.cause) == (
        S.OUT_OF_SERVICE,
        S.UNACK_ACTIVE,
        AlarmCause.RETURN_TO_SERVICE,
    )


def test_out_of_service_ends_a_shelve() -> None:
    d = Driven()
    d.act(A.SHELVE, minutes=5, reason="noisy")
    d.act(A.OUT_OF_SERVICE, reason="removed")
    assert d.machine.shelved_until is None
    back = d.act(A.RETURN_TO_SERVICE)
    assert back.state is S.NORMAL


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (A.ACK, "alarm 'PT01 high' is normal: only an unacknowledged alarm"),
        (A.UNSHELVE, "alarm 'PT01 high' is not shelved"),
        (A.RETURN_TO_SERVICE, "alarm 'PT01 high' is not out of service"),
    ],
)
def test_actions_the_state_does_not_allow(action: AlarmAction, message: str) -> None:
    d = Driven()
    with pytest.raises(AlarmActionError, match=message):
        d.act(action)


def test_snapshot_and_prime() -> None:
    d = Driven(priority="high", message="check the column")
    d.machine.prime(suppressed=True, value=1.5)
    snap = d.machine.snapshot(12.0)
    assert (snap.state, snap.previous, snap.cause, snap.value) == (
        S.SUPPRESSED,
        S.SUPPRESSED,
        AlarmCause.SNAPSHOT,
        1.5,
    )
    assert (snap.priority.value, snap.message) == ("high", "check the column")
    assert d.feed(False, suppressed=True) == []
