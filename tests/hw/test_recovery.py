"""The recovery machine driven with fake `now` values: no sockets, no sleeping."""

import pytest
from pydantic import ValidationError

from engine.hw.base import ConnectionState as S
from engine.hw.recovery import Action, RecoveryMachine, RecoveryPolicy

POLICY = RecoveryPolicy(
    reconnect_after=1.0, issue_errors=3, error_after=30.0, backoff_initial=0.5, backoff_max=4.0
)


def transitions(m: RecoveryMachine) -> list[tuple[S, S]]:
    return [(e.old, e.new) for e in m.drain_events()]


def test_short_glitch_is_masked_and_recovers_without_reconnect() -> None:
    m = RecoveryMachine("dev", POLICY)
    m.on_error(10.0, "timeout")
    assert m.state is S.ISSUE and m.masking
    assert m.poll(10.5) is Action.NONE
    m.on_success(10.6)
    assert m.state in (S.OK,)
    assert transitions(m) == [(S.OK, S.ISSUE), (S.ISSUE, S.OK)]


def test_issue_becomes_reconnect_after_time_then_backs_off() -> None:
    m = RecoveryMachine("dev", POLICY)
    m.on_error(0.0, "timeout")
    assert m.poll(0.9) is Action.NONE
    assert m.poll(1.0) is Action.RECONNECT
    assert m.state is S.RECONNECT and m.link_down
    assert m.poll(1.0) is Action.NONE  # attempt in flight
    m.on_error(1.1, "refused")
    assert m.next_deadline() == pytest.approx(1.6)
    assert m.poll(1.5) is Action.NONE
    assert m.poll(1.6) is Action.RECONNECT
    m.on_error(1.7, "refused")
    assert m.next_attempt == pytest.approx(2.7)
    assert m.poll(2.7) is Action.RECONNECT
    m.on_error(2.8, "refused")
    assert m.next_attempt == pytest.approx(4.8)
    for _ in range(5):
        m.on_error(m.next_attempt or 0, "refused")
    assert m.policy.backoff(m.attempt) == 4.0
    m.on_success(20.0)
    assert transitions(m) == [(S.OK, S.ISSUE), (S.ISSUE, S.RECONNECT), (S.RECONNECT, S.OK)]
    assert m.attempt == 0 and m.first_failure is None


def test_repeated_errors_in_issue_force_reconnect_early() -> None:
    m = RecoveryMachine("dev", POLICY)
    for t in (0.0, 0.1, 0.2):
        m.on_error(t, "timeout")
    assert m.poll(0.2) is Action.RECONNECT


def test_lost_connection_skips_to_reconnect() -> None:
    m = RecoveryMachine("dev", POLICY)
    m.on_connection_lost(5.0, "connection reset")
    assert m.state is S.RECONNECT
    assert m.poll(5.0) is Action.RECONNECT


def test_error_after_timeout_names_the_failure_and_keeps_retrying() -> None:
    m = RecoveryMachine("pump port", POLICY)
    m.on_connection_lost(100.0, "cannot connect to 10.0.0.9:502")
    t = 100.0
    while t < 129.9:
        if m.poll(t) is Action.RECONNECT:
            m.on_error(t, "cannot connect to 10.0.0.9:502")
        t += 0.1
    assert m.state is S.RECONNECT
    m.poll(130.0)
    assert m.state in (S.ERROR,) and not m.masking
    events = m.drain_events()
    assert [e.new for e in events] == [S.ISSUE, S.RECONNECT, S.ERROR]
    assert "no connection for 30.0 s" in events[-1].message
    assert "cannot connect to 10.0.0.9:502" in events[-1].message
    assert events[-1].source == "pump port"
    # background reconnects continue in Error, at the longest backoff
    deadline = m.next_deadline()
    assert deadline is not None and deadline <= 130.0 + 4.0
    assert m.poll(deadline) is Action.RECONNECT
    m.on_success(deadline + 0.1)
    assert m.state is S.OK
    assert [(e.old, e.new) for e in m.drain_events()] == [(S.ERROR, S.OK)]


def test_error_timeout_is_configurable() -> None:
    m = RecoveryMachine("dev", RecoveryPolicy(error_after=2.0, reconnect_after=0.5))
    m.on_error(0.0, "timeout")
    m.poll(1.9)
    assert m.state is S.RECONNECT
    m.poll(2.0)
    assert m.state in (S.ERROR,)


def test_default_error_time_is_30_s() -> None:
    assert RecoveryPolicy().error_after == 30.0


def test_bad_policy_is_rejected_with_field_name() -> None:
    with pytest.raises(ValidationError, match="error_after"):
        RecoveryPolicy(error_after=0)
    with pytest.raises(ValidationError, match="backoff_max"):
        RecoveryPolicy(backoff_initial=10, backoff_max=1)


def test_late_first_poll_goes_to_error_and_still_reconnects() -> None:
    """A poll that first comes after error_after skips Reconnect; Error must keep retrying."""
    m = RecoveryMachine("dev", POLICY)
    m.on_error(0.0, "timeout")
    assert m.poll(31.0) is Action.NONE
    assert m.state is S.ERROR
    deadline = m.next_deadline()
    assert deadline is not None
    assert m.poll(deadline) is Action.RECONNECT
    m.on_error(deadline + 0.1, "refused")
    later = m.next_deadline()
    assert later is not None and later > deadline
    assert m.poll(later) is Action.RECONNECT


def test_error_before_reconnect_is_refused() -> None:
    with pytest.raises(ValidationError, match="error_after must be >= reconnect_after"):
        RecoveryPolicy(reconnect_after=5.0, error_after=2.0)
