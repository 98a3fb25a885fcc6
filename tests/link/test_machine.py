"""The sans-I/O link machine, driven by events and a fake `now`: no sockets, threads or sleep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.link.machine import (
    Action,
    Close,
    Execute,
    LinkMachine,
    LinkPolicy,
    ReadOutbox,
    Rebase,
    ScheduleReconnect,
    Send,
)
from engine.link.outbox import Outbox
from protocol.messages import (
    Ack,
    ControlCommand,
    InvokeCommand,
    LiveDemand,
    Ping,
    Registered,
    ResendRequest,
    RunStopped,
    TagsUpdated,
)
from protocol.models import ControlAction
from protocol.version import PROTOCOL_VERSION
from tests.link.helpers import registration, sample_fields

T0 = 1_700_000_000.0


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


class InlineIO(LinkMachine):
    """Carries out the machine's outbox requests at once, as the shell does in its worker thread,
    so that most tests read as plain event -> frames. Tests of the requests themselves use a bare
    LinkMachine."""

    def __init__(self, outbox: Outbox, **kwargs: Any) -> None:
        super().__init__(outbox, **kwargs)
        self.outbox = outbox

    def pump(self, now: float) -> list[Action]:
        return self._inline(super().pump(now))

    def registered(self, message: Registered, now: float) -> list[Action]:
        return self._inline(super().registered(message, now))

    def _inline(self, actions: list[Action]) -> list[Action]:
        out: list[Action] = []
        for action in actions:
            if isinstance(action, ReadOutbox):
                out += self.outbox_read(action, *action.run(self.outbox))
            elif isinstance(action, Rebase):
                out += self.rebased(action, self.outbox.rebase(action.above))
            else:
                out.append(action)
        return out


def make(outbox: Outbox, draws: list[float] | None = None, **policy: Any) -> LinkMachine:
    values = iter(draws or [0.5] * 100)
    return InlineIO(
        outbox,
        session_id="session-1",
        engine_version="0.1.0",
        policy=LinkPolicy(**policy),
        random=lambda: next(values),
    )


def produce(outbox: Outbox, first: int, last: int) -> None:
    for n in range(first, last + 1):
        outbox.enqueue(TagsUpdated, sample_fields(n))
    outbox.flush()


def frames(actions: list[Action]) -> list[dict[str, Any]]:
    return [json.loads(a.frame) for a in actions if isinstance(a, Send)]


def seqs(actions: list[Action]) -> list[int]:
    return [f["seq"] for f in frames(actions) if f["type"] == "TagsUpdated"]


def registered_frame(last_seq: int, interval: float = 5.0, version: str = "1.0") -> str:
    return Registered(
        engine_id="testpc/Test Unit",
        session_id="session-1",
        last_seq=last_seq,
        clock_offset=0.0,
        protocol_version=version,
        heartbeat_interval=interval,
    ).model_dump_json()


def online(
    machine: LinkMachine, last_seq: int, now: float = T0, interval: float = 5.0
) -> list[Action]:
    machine.connected(now, registration())
    return machine.frame_received(registered_frame(last_seq, interval), now)


def test_registers_first_and_sends_nothing_before_registered(outbox: Outbox) -> None:
    produce(outbox, 1, 3)
    machine = make(outbox)
    actions = machine.connected(T0, registration())
    [register] = frames(actions)
    assert register["type"] == "RegisterEngine"
    assert register["last_seq"] == 3
    assert register["session_id"] == "session-1"
    assert register["engine_id"] == "testpc/Test Unit"
    assert register["clock"] == T0
    assert machine.pump(T0) == []
    assert machine.frame_received(Ack(seq=3).model_dump_json(), T0) == []
    assert outbox.pending == 3, "an Ack before Registered must not delete anything"


def test_registered_drops_stored_and_resends_the_rest_in_order(outbox: Outbox) -> None:
    produce(outbox, 1, 5)
    machine = make(outbox)
    actions = online(machine, last_seq=2)
    assert seqs(actions) == [3, 4, 5]
    assert outbox.first_seq() == 3, "what the aggregator stored is deleted"
    assert machine.acked_seq == 2
    assert all(tag["historical"] for f in frames(actions) for tag in f["tags"])


def test_cumulative_ack_duplicate_and_excess(outbox: Outbox) -> None:
    machine = make(outbox)
    online(machine, 0)
    produce(outbox, 1, 5)
    assert seqs(machine.pump(T0)) == [1, 2, 3, 4, 5]
    machine.frame_received(Ack(seq=3).model_dump_json(), T0)
    assert outbox.first_seq() == 4
    assert machine.frame_received(Ack(seq=3).model_dump_json(), T0) == []
    assert machine.frame_received(Ack(seq=1).model_dump_json(), T0) == []
    assert machine.acked_seq == 3
    produce(outbox, 6, 6)  # committed but not yet sent
    machine.frame_received(Ack(seq=99).model_dump_json(), T0)
    assert machine.acked_seq == 5, "an Ack never covers what was not sent"
    assert outbox.first_seq() == 6


def test_live_frames_are_not_historical(outbox: Outbox) -> None:
    machine = make(outbox)
    online(machine, 0)
    produce(outbox, 1, 2)
    sent = frames(machine.pump(T0))
    assert [tag["historical"] for f in sent for tag in f["tags"]] == [False, False]


def test_resend_request_inside_the_outbox(outbox: Outbox) -> None:
    machine = make(outbox, resend_grace=2.0)
    online(machine, 0)
    produce(outbox, 1, 10)
    assert seqs(machine.pump(T0)) == list(range(1, 11))
    machine.frame_received(Ack(seq=4).model_dump_json(), T0)
    actions = machine.frame_received(ResendRequest(from_seq=5).model_dump_json(), T0)
    assert seqs(actions) == [], "5 may still be in flight: wait for its Ack first"
    assert seqs(machine.tick(T0 + 1.9)) == []
    resent = machine.tick(T0 + 2.0)
    assert seqs(resent) == list(range(5, 11))
    assert all(isinstance(a, Send) and a.historical for a in resent if seqs([a]))
    produce(outbox, 11, 11)
    assert seqs(machine.pump(T0 + 2.0)) == [11]
    assert seqs(machine.tick(T0 + 10)) == [], "a request is honoured once"


def test_resend_request_for_frames_in_flight_is_dropped_by_their_ack(outbox: Outbox) -> None:
    machine = make(outbox, resend_grace=2.0)
    online(machine, 0)
    produce(outbox, 1, 10)
    machine.pump(T0)
    machine.frame_received(ResendRequest(from_seq=3).model_dump_json(), T0)
    machine.frame_received(Ack(seq=6).model_dump_json(), T0 + 0.1)
    assert seqs(machine.tick(T0 + 5)) == [], "no duplicate of what was only in flight"


def test_resend_request_for_what_is_gone_reports_the_gap(outbox: Outbox) -> None:
    machine = make(outbox, resend_grace=0.0)
    online(machine, 0)
    produce(outbox, 1, 8)
    machine.pump(T0)
    machine.frame_received(Ack(seq=5).model_dump_json(), T0)
    actions = machine.frame_received(ResendRequest(from_seq=3).model_dump_json(), T0)
    [gone] = frames(actions)
    assert gone["type"] == "ProtocolError"
    assert gone["rule"] == 7
    assert gone["seq"] == 3
    assert "3..5" in gone["message"]
    assert seqs(machine.tick(T0)) == [6, 7, 8]


def test_resend_request_for_unsent_seq_changes_nothing(outbox: Outbox) -> None:
    machine = make(outbox, window=2, replay_batch=2)
    produce(outbox, 1, 6)
    assert seqs(online(machine, 0)) == [1, 2]
    assert machine.frame_received(ResendRequest(from_seq=3).model_dump_json(), T0) == []
    assert seqs(machine.frame_received(Ack(seq=2).model_dump_json(), T0)) == [3, 4]
    assert seqs(machine.frame_received(Ack(seq=4).model_dump_json(), T0)) == [5, 6]


def test_heartbeat_every_interval_and_close_after_three_silent_intervals(outbox: Outbox) -> None:
    machine = make(outbox, heartbeat_interval=5.0)
    online(machine, 0, now=T0, interval=5.0)
    assert machine.tick(T0 + 4.9) == []
    produce(outbox, 1, 2)
    beats = [f for f in frames(machine.tick(T0 + 5.0)) if f["type"] == "Heartbeat"]
    assert beats == [{"type": "Heartbeat", "seq": 2, "time": T0 + 5.0}]
    machine.frame_received(Ack(seq=2).model_dump_json(), T0 + 6.0)  # heard at +6
    assert not any(isinstance(a, Close) for a in machine.tick(T0 + 20.9))
    actions = machine.tick(T0 + 21.0)
    assert [a for a in actions if isinstance(a, Close)] == [
        Close("nothing heard from the aggregator for 15 s")
    ]
    assert machine.frame_received(Ack(seq=2).model_dump_json(), T0 + 21.0) == []
    assert machine.tick(T0 + 30) == []


def test_registration_timeout_closes(outbox: Outbox) -> None:
    machine = make(outbox, heartbeat_interval=2.0)
    machine.connected(T0, registration())
    assert machine.tick(T0 + 5.9) == []
    assert machine.tick(T0 + 6.0) == [Close("no Registered within 6 s")]


def test_heartbeat_uses_the_shorter_interval_and_the_aggregators_for_silence(
    outbox: Outbox,
) -> None:
    machine = make(outbox, heartbeat_interval=1.0)
    online(machine, 0, interval=10.0)
    assert machine.send_interval == 1.0
    assert any(f["type"] == "Heartbeat" for f in frames(machine.tick(T0 + 1.0)))
    assert not any(isinstance(a, Close) for a in machine.tick(T0 + 29.0))
    assert any(isinstance(a, Close) for a in machine.tick(T0 + 30.0))


def test_clock_stepping_back_does_not_stop_heartbeats(outbox: Outbox) -> None:
    machine = make(outbox, heartbeat_interval=1.0)
    online(machine, 0, now=T0, interval=1.0)
    assert machine.tick(T0 - 100) == []
    assert any(f["type"] == "Heartbeat" for f in frames(machine.tick(T0 - 99)))


def test_throttled_replay_interleaves_live_messages(outbox: Outbox) -> None:
    produce(outbox, 1, 1000)
    machine = make(outbox, replay_batch=100, window=300)
    first = online(machine, 0)
    assert seqs(first) == list(range(1, 101)), "one bounded batch per pump"
    assert machine.replaying and machine.has_more
    produce(outbox, 1001, 1001)  # a live message arrives during replay
    second = machine.pump(T0)
    assert seqs(second) == [1001, *range(101, 201)], "live goes first, then the next batch"
    live = frames(second)[0]
    assert not live["tags"][0]["historical"]
    assert all(f["tags"][0]["historical"] for f in frames(second)[1:])
    assert seqs(machine.pump(T0)) == list(range(201, 301))
    produce(outbox, 1002, 1002)
    assert seqs(machine.pump(T0)) == [1002], "the window is full: live still flows"
    assert not machine.has_more
    after_ack = machine.frame_received(Ack(seq=250).model_dump_json(), T0)
    assert seqs(after_ack) == list(range(301, 401)), "an Ack opens the window again"
    assert seqs(machine.pump(T0)) == list(range(401, 501))
    assert seqs(machine.pump(T0)) == list(range(501, 551)), "only what fits the window"
    assert machine.pump(T0) == []
    sent: list[int] = []
    while machine.replaying:
        highest = sent[-1] if sent else 550
        sent += seqs(machine.frame_received(Ack(seq=highest).model_dump_json(), T0))
        sent += seqs(machine.pump(T0))
    assert sent == list(range(551, 1001))
    machine.frame_received(Ack(seq=1002).model_dump_json(), T0)
    assert outbox.pending == 0


def test_non_sample_messages_are_replayed_unchanged(outbox: Outbox) -> None:
    outbox.enqueue(RunStopped, {"time": T0, "run_id": "r", "stopped": T0, "reason": "stop"})
    outbox.flush()
    machine = make(outbox)
    [sent] = [a for a in online(machine, 0) if isinstance(a, Send)]
    assert sent.historical
    assert json.loads(sent.frame)["type"] == "RunStopped"


def test_backoff_grows_with_jitter_bounds_and_resets_on_registration(outbox: Outbox) -> None:
    policy = LinkPolicy(backoff_initial=1.0, backoff_factor=2.0, backoff_max=8.0, jitter=0.5)
    assert policy.backoff(0, 0.0) == 1.0
    assert policy.backoff(0, 0.999999) == pytest.approx(0.5, abs=1e-5)
    assert policy.backoff(3, 0.0) == 8.0
    assert policy.backoff(10, 0.0) == 8.0, "capped"
    assert policy.backoff(1000, 0.0) == 8.0, "no overflow"
    draws = [0.0, 0.0, 0.0, 0.0, 0.0, 0.99, 0.0]
    machine = make(outbox, draws, backoff_initial=1.0, backoff_max=8.0)
    delays = [
        a.delay
        for _ in range(5)
        for a in machine.connect_failed(T0)
        if isinstance(a, ScheduleReconnect)
    ]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    online(machine, 0)
    [again] = machine.disconnected(T0)
    assert isinstance(again, ScheduleReconnect)
    assert 0.5 <= again.delay <= 1.0, "attempts restart after a successful registration"
    assert again.delay == pytest.approx(1.0 - 0.5 * 0.99)


def test_random_delays_stay_within_bounds(outbox: Outbox) -> None:
    import random

    rng = random.Random(7)
    machine = LinkMachine(
        outbox,
        session_id="s",
        engine_version="0",
        random=rng.random,
        policy=LinkPolicy(backoff_initial=0.5, backoff_max=30.0, jitter=0.5),
    )
    for attempt in range(12):
        [action] = machine.connect_failed(T0)
        assert isinstance(action, ScheduleReconnect)
        base = min(30.0, 0.5 * 2**attempt)
        assert base / 2 <= action.delay <= base


def test_restart_of_the_outbox_keeps_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path)
    machine = make(box)
    online(machine, 0)
    produce(box, 1, 4)
    machine.pump(T0)
    machine.frame_received(Ack(seq=4).model_dump_json(), T0)
    box.close()

    box = Outbox(path)
    machine = make(box)
    [register] = frames(machine.connected(T0, registration()))
    assert register["last_seq"] == 4
    machine.frame_received(registered_frame(4), T0)
    produce(box, 5, 5)
    assert seqs(machine.pump(T0)) == [5]
    box.close()


def test_disconnect_mid_replay_resumes_from_what_the_aggregator_stored(outbox: Outbox) -> None:
    produce(outbox, 1, 20)
    machine = make(outbox, replay_batch=5)
    assert seqs(online(machine, 0)) == [1, 2, 3, 4, 5]
    machine.pump(T0)  # 6..10 sent, never stored
    machine.disconnected(T0)
    produce(outbox, 21, 22)  # produced while offline
    assert seqs(online(machine, 3)) == [4, 5, 6, 7, 8]
    collected: list[int] = []
    while machine.has_more:
        collected += seqs(machine.pump(T0))
    assert collected == list(range(9, 23))


def test_aggregator_ahead_of_the_outbox_renumbers(outbox: Outbox) -> None:
    produce(outbox, 1, 3)  # a fresh data directory numbered from 1 again
    machine = make(outbox)
    actions = online(machine, 50)
    assert seqs(actions) == [51, 52, 53]
    assert [f["tags"][0]["value"] for f in frames(actions)] == [1, 2, 3]
    produce(outbox, 4, 4)
    assert seqs(machine.pump(T0)) == [54]


def test_registered_after_a_lost_range_reports_the_gap(outbox: Outbox) -> None:
    produce(outbox, 1, 6)
    outbox.ack(4)  # acked by an aggregator that later lost 3..4 (restored from a backup)
    machine = make(outbox)
    gap, *rest = frames(online(machine, 2))
    assert (gap["type"], gap["rule"], gap["seq"]) == ("ProtocolError", 7, 3)
    assert [f["seq"] for f in rest] == [5, 6]


def test_commands_are_executed_and_answered(outbox: Outbox) -> None:
    machine = make(outbox)
    online(machine, 0)
    produce(outbox, 1, 2)
    machine.pump(T0)
    command = ControlCommand(id="c1", user="ann", command=ControlAction.START)
    [action] = machine.frame_received(command.model_dump_json(), T0)
    assert action == Execute(command)
    [result] = frames(machine.command_finished("c1", ok=False, error="no method"))
    assert result == {
        "type": "CommandResult",
        "id": "c1",
        "seq": 2,
        "ok": False,
        "error": "no method",
        "data": None,
    }
    inject = InvokeCommand(id="c2", user="ann", pcode="Mark: A")
    assert machine.frame_received(inject.model_dump_json(), T0) == [Execute(inject)]
    [pong] = frames(machine.frame_received(Ping(id="p1", time=T0).model_dump_json(), T0))
    assert (pong["type"], pong["id"], pong["ok"]) == ("CommandResult", "p1", True)


def test_bad_frames_get_a_protocol_error_and_the_link_stays_up(outbox: Outbox) -> None:
    machine = make(outbox)
    online(machine, 0)
    [reply] = frames(machine.frame_received("{not json", T0))
    assert reply["type"] == "ProtocolError" and reply["rule"] == 11
    [reply] = frames(
        machine.frame_received(
            TagsUpdated(
                seq=1, time=T0, **{k: v for k, v in sample_fields(1).items() if k != "time"}
            ).model_dump_json(),
            T0,
        )
    )
    assert reply["type"] == "ProtocolError" and reply["rule"] == 9
    assert machine.online


def test_protocol_error_from_the_aggregator_is_logged(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    machine = make(outbox)
    online(machine, 0)
    frame = json.dumps({"type": "ProtocolError", "rule": 6, "message": "seq 4 differs", "seq": 4})
    assert machine.frame_received(frame, T0) == []
    assert "seq 4 differs" in caplog.text
    assert machine.online


def test_incompatible_major_version_closes(
    outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    machine = make(outbox)
    machine.connected(T0, registration())
    [action] = machine.frame_received(registered_frame(0, version="2.0"), T0)
    assert isinstance(action, Close)
    assert "2.0" in action.reason and PROTOCOL_VERSION in action.reason


def bare(outbox: Outbox, **policy: Any) -> LinkMachine:
    """A machine whose outbox requests the test answers itself, in any order it likes."""
    return LinkMachine(
        outbox,
        session_id="session-1",
        engine_version="0.1.0",
        policy=LinkPolicy(**policy),
        random=lambda: 0.5,
    )


def test_reads_are_requested_one_at_a_time_and_sent_when_answered(outbox: Outbox) -> None:
    produce(outbox, 1, 5)
    machine = bare(outbox)
    machine.connected(T0, registration())
    [request] = machine.frame_received(registered_frame(0), T0)
    assert isinstance(request, ReadOutbox)
    assert request.live is None and request.backlog is not None
    assert (request.backlog.after, request.backlog.upto) == (0, 5)
    assert not machine.has_more and machine.pump(T0) == [], "one request at a time"
    assert machine.frame_received(Ack(seq=0).model_dump_json(), T0) == []
    sent = machine.outbox_read(request, *request.run(outbox))
    assert seqs(sent) == [1, 2, 3, 4, 5]
    assert machine.outbox_read(request, *request.run(outbox)) == [], "answered once"
    produce(outbox, 6, 6)
    [live] = machine.pump(T0)
    assert isinstance(live, ReadOutbox) and live.backlog is None
    assert seqs(machine.outbox_read(live, *live.run(outbox))) == [6]


def test_a_read_answered_after_a_reconnect_is_dropped(outbox: Outbox) -> None:
    produce(outbox, 1, 3)
    machine = bare(outbox)
    machine.connected(T0, registration())
    [old] = machine.frame_received(registered_frame(0), T0)
    machine.disconnected(T0)
    machine.connected(T0 + 1, registration())
    [new] = machine.frame_received(registered_frame(2), T0 + 1)
    assert isinstance(old, ReadOutbox) and isinstance(new, ReadOutbox)
    assert machine.outbox_read(old, *old.run(outbox)) == []
    assert seqs(machine.outbox_read(new, *new.run(outbox))) == [3]


def test_an_ack_past_the_cursor_during_a_read_drops_the_stale_batch(outbox: Outbox) -> None:
    produce(outbox, 1, 6)
    machine = bare(outbox, replay_batch=2)
    machine.connected(T0, registration())
    [request] = machine.frame_received(registered_frame(0), T0)
    assert isinstance(request, ReadOutbox)
    answer = request.run(outbox)  # read before the Ack arrives
    assert machine.frame_received(Ack(seq=4).model_dump_json(), T0) == []
    assert machine.outbox_read(request, *answer) == [], "1..2 are stored already"
    [again] = machine.pump(T0)
    assert isinstance(again, ReadOutbox)
    assert seqs(machine.outbox_read(again, *again.run(outbox))) == [5, 6]


def test_rebase_is_requested_and_registration_waits_for_it(outbox: Outbox) -> None:
    """Messages committed between the decision and the rebase are renumbered too: each one
    numbered at or below the aggregator's seq would be taken for one it has and dropped."""
    produce(outbox, 1, 3)
    machine = bare(outbox)
    machine.connected(T0, registration())
    [request] = machine.frame_received(registered_frame(4), T0)
    assert isinstance(request, Rebase) and request.above == 4
    assert not machine.online
    assert machine.frame_received(registered_frame(4), T0) == [], "one rebase at a time"
    produce(outbox, 4, 6)  # the scan goes on while the rebase waits for its thread
    assert machine.rebased(Rebase(4), 0) == [], "only the answer to this request counts"
    [read] = machine.rebased(request, outbox.rebase(request.above))
    assert machine.online and machine.acked_seq == 4
    assert isinstance(read, ReadOutbox)
    sent = machine.outbox_read(read, *read.run(outbox))
    assert seqs(sent) == [5, 6, 7, 8, 9, 10]
    assert [f["tags"][0]["value"] for f in frames(sent)] == [1, 2, 3, 4, 5, 6]


def test_live_tags_only_to_a_1_5_aggregator_watching_with_nothing_stored_unsent(
    outbox: Outbox,
) -> None:
    """Protocol 1.5: a live update may bypass the outbox only when it cannot overtake a stored
    message on the wire, only while watched, and only to an aggregator that takes LiveTags."""
    machine = bare(outbox)
    assert not machine.live_tags_now, "not connected"
    machine.connected(T0, registration())
    assert not machine.live_tags_now, "registering"
    assert machine.frame_received(registered_frame(0, version="1.5"), T0) == []
    assert machine.live_tags_now, "online, watched, nothing emitted"

    outbox.enqueue(TagsUpdated, sample_fields(1))
    assert not machine.live_tags_now, "a stored message is not yet committed"
    outbox.flush()
    assert not machine.live_tags_now, "committed, not yet sent"
    [read] = machine.pump(T0)
    assert isinstance(read, ReadOutbox)
    assert not machine.live_tags_now, "being read for sending"
    assert seqs(machine.outbox_read(read, *read.run(outbox))) == [1]
    assert machine.live_tags_now, "everything stored has gone out before it"

    machine.frame_received(LiveDemand(watched=False).model_dump_json(), T0)
    assert not machine.live_tags_now, "nobody watches: nothing live at all"
    machine.frame_received(LiveDemand(watched=True).model_dump_json(), T0)
    assert machine.live_tags_now

    machine.disconnected(T0)
    assert not machine.live_tags_now, "offline"
    machine.connected(T0, registration())
    machine.frame_received(registered_frame(1, version="1.4"), T0)
    assert machine.online and not machine.live_tags_now, "a 1.4 aggregator gets TagsUpdated"
