"""The per-connection decisions of rules 5, 6 and 7, without sockets or a database."""

from __future__ import annotations

from collections.abc import Sequence

import protocol as p
from aggregator.ingest_session import (
    CompareStored,
    IngestSession,
    IntegrityError,
    Overflow,
    RecordGap,
    RequestResend,
    Store,
    message_digest,
    same_content,
)


def msg(seq: int, value: float | None = None) -> p.TagsUpdated:
    return p.TagsUpdated(
        seq=seq,
        time=float(seq),
        run_id="r",
        tags=[
            p.TagValue(name="FT01", value=float(seq) if value is None else value, tick=float(seq))
        ],
    )


def stored(actions: Sequence[object]) -> list[int]:
    return [a.message.seq for a in actions if isinstance(a, Store)]


def test_in_order_messages_are_stored_and_acked_after_commit() -> None:
    s = IngestSession(0)
    assert stored(s.on_message(msg(1), 0) + s.on_message(msg(2), 0)) == [1, 2]
    assert s.committed == 0, "nothing is acknowledged before the commit"
    assert s.on_committed(2) == 2
    assert s.on_committed(1) == 2, "acks are cumulative and never go back"


def test_starts_after_the_stored_seq() -> None:
    s = IngestSession(41)
    assert stored(s.on_message(msg(42), 0)) == [42]


def test_duplicate_of_a_committed_message_is_compared_with_the_stored_copy() -> None:
    s = IngestSession(5)
    [action] = s.on_message(msg(3), 0)
    assert isinstance(action, CompareStored) and action.message.seq == 3


def test_duplicate_of_an_uncommitted_message_is_compared_in_memory() -> None:
    s = IngestSession(0)
    s.on_message(msg(1), 0)
    assert s.on_message(msg(1), 0) == []
    historical = p.as_historical(msg(1))
    assert s.on_message(historical, 0) == [], "the historical flag is not a difference"
    [error] = s.on_message(msg(1, value=9.0), 0)
    assert isinstance(error, IntegrityError) and error.seq == 1


def test_gap_asks_once_and_holds_what_is_beyond_it() -> None:
    s = IngestSession(1)
    assert s.on_message(msg(3), 0) == [RequestResend(2)]
    assert s.on_message(msg(4), 0) == [], "one request per hole"
    assert s.held == 2 and s.accepted == 1
    assert stored(s.on_message(msg(2), 0)) == [2, 3, 4]
    assert s.held == 0


def test_engine_reports_gone_messages() -> None:
    s = IngestSession(1)
    s.on_message(msg(5), 0)
    actions = s.on_engine_gone(2, 4, 0)
    assert isinstance(actions[0], RecordGap) and (actions[0].first, actions[0].last) == (2, 4)
    assert stored(actions) == [5]


def test_engine_reports_gone_range_ahead_of_what_arrived() -> None:
    s = IngestSession(1)
    s.on_message(msg(3), 0)
    assert s.on_engine_gone(4, 6, 0) == []
    actions = s.on_message(msg(2), 0) + s.on_message(msg(7), 0)
    assert stored(actions) == [2, 3, 7]
    assert [(a.first, a.last) for a in actions if isinstance(a, RecordGap)] == [(4, 6)]


def test_resend_starting_later_means_the_hole_is_lost() -> None:
    s = IngestSession(1)
    s.on_message(msg(3), 0)
    s.on_message(msg(4), 0)
    actions = s.on_message(msg(3), 0)
    gaps = [a for a in actions if isinstance(a, RecordGap)]
    assert [(g.first, g.last) for g in gaps] == [(2, 2)]
    assert stored(actions) == [3, 4]


def test_unanswered_resend_times_out() -> None:
    s = IngestSession(1, resend_timeout=5.0)
    s.on_message(msg(3), 100.0)
    assert s.on_tick(104.9) == []
    actions = s.on_tick(105.0)
    assert isinstance(actions[0], RecordGap) and stored(actions) == [3]


def test_replay_progress_keeps_the_timeout_away() -> None:
    """Live frames held during a long replay are not a gap while the replay makes progress."""
    s = IngestSession(0, resend_timeout=5.0)
    s.on_message(msg(1000), 0.0)
    for seq in range(1, 1000):
        assert not [a for a in s.on_message(msg(seq), seq * 0.01) if isinstance(a, RecordGap)]
        assert s.on_tick(seq * 0.01) == []
    assert s.accepted == 1000


def test_heartbeat_tail_gap_needs_two_beats_without_progress() -> None:
    s = IngestSession(3)
    assert s.on_heartbeat(5, 0) == []
    assert s.on_heartbeat(5, 1) == [RequestResend(4)]
    s2 = IngestSession(3)
    s2.on_heartbeat(5, 0)
    s2.on_message(msg(4), 0)
    assert s2.on_heartbeat(5, 1) == [], "progress in between: not a gap yet"


def test_too_many_held_frames_overflow() -> None:
    s = IngestSession(0, max_held=3)
    actions = [a for seq in range(2, 6) for a in s.on_message(msg(seq), 0)]
    assert any(isinstance(a, Overflow) for a in actions)


def test_timeout_waits_while_our_own_commit_is_pending() -> None:
    """An engine whose window is full waits for our Ack; a slow commit is not its gap."""
    s = IngestSession(1, resend_timeout=5.0)
    s.on_message(msg(2), 0.0)
    s.on_message(msg(4), 0.0)  # 3 missing, 4 held; 2 not yet committed
    assert s.on_tick(60.0) == [], "commit of 2 still pending"
    s.on_committed(2, 60.0)
    assert s.on_tick(64.9) == []
    actions = s.on_tick(65.0)
    assert isinstance(actions[0], RecordGap) and (actions[0].first, actions[0].last) == (3, 3)


def test_digest_ignores_historical_flags_only() -> None:
    first = msg(7, 1.5)
    assert message_digest(first) == message_digest(p.as_historical(first))
    assert message_digest(first) != message_digest(msg(7, 1.25))
    control = p.ControlState(seq=7, time=7.0, state=p.SystemState.RUNNING)
    assert message_digest(control) != message_digest(control.model_copy(update={"block": "B"}))
    assert len(message_digest(first)) <= 64  # received_message.digest is VARCHAR(64)


def test_digests_stored_before_the_cheap_digest_still_compare() -> None:
    first = msg(7, 1.5)
    legacy = p.content_digest(first)
    assert same_content(legacy, p.as_historical(first), message_digest(first))
    assert not same_content(legacy, msg(7, 9.0), message_digest(msg(7, 9.0)))
    assert same_content(message_digest(first), first, message_digest(p.as_historical(first)))
    assert not same_content(message_digest(first), msg(7, 9.0), message_digest(msg(7, 9.0)))
