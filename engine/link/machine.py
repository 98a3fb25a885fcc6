"""Sans-I/O state machine of the engine's side of `/engine/ws`.

Everything that decides *what* goes on the wire and *when* lives here, fed with events and the
current time, so that registration, ordered resend, acks, gaps, heartbeats, throttled replay and
backoff are tested without sockets, threads or sleeping. The shell (client.py) owns the socket,
the timers and the engine; it obeys the returned actions.

Two streams share the socket after a (re)connect (rules 6 and 8):

* the *backlog*: everything the outbox holds after the aggregator's `Registered.last_seq` up to
  the high-water mark at registration (`RegisterEngine.last_seq`), resent in seq order, in
  batches of `replay_batch`, with TagsUpdated marked historical, never more than `window`
  unacknowledged;
* the *live* stream: messages committed after registration, sent as soon as they are committed,
  ahead of the remaining backlog, in seq order.

So the aggregator sees two increasing sequences: backlog seqs <= RegisterEngine.last_seq and live
seqs above it. Its cumulative Ack can only pass the backlog once the backlog is complete.

The machine never reads the outbox itself: reading (SQLite) and renumbering (a commit) would
block the event loop the shell runs on. It asks with `ReadOutbox` and `Rebase` actions, one at a
time, and the shell reports the results with `outbox_read` and `rebased`; a result that arrives
after the state it was asked for has moved on (a disconnect, an Ack past the cursor, a resend)
is dropped and asked again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from engine.link.outbox import StoredFrame
from engine.ports import Registration
from protocol.codec import decode
from protocol.errors import ProtocolError
from protocol.integrity import as_historical
from protocol.messages import (
    Ack,
    AlarmCommand,
    CancelLine,
    CancelModel,
    CommandResult,
    ControlCommand,
    ForceLine,
    Heartbeat,
    InvokeCommand,
    LiveDemand,
    Ping,
    ProtocolErrorMessage,
    Registered,
    RegisterEngine,
    ResendRequest,
    ResumeLine,
    RunModel,
    SetMethod,
    TagsUpdated,
)
from protocol.version import LIVE_TAGS_VERSION, PROTOCOL_VERSION, at_least

log = logging.getLogger("engine.link")

Command = (
    InvokeCommand
    | ControlCommand
    | SetMethod
    | CancelLine
    | ForceLine
    | ResumeLine
    | AlarmCommand
    | RunModel
    | CancelModel
)


class OutboxStore(Protocol):
    """What the machine touches directly: both in memory, never waiting for the disk."""

    @property
    def committed_seq(self) -> int: ...

    @property
    def assigned_seq(self) -> int: ...

    def ack(self, seq: int) -> int: ...


class OutboxReader(Protocol):
    """What the shell uses to carry out `ReadOutbox` (engine.link.outbox.Outbox implements it)."""

    def read(self, after: int, limit: int, upto: int | None = None) -> list[StoredFrame]: ...


class LinkPolicy(BaseModel):
    """Timings and limits of the link (seconds, frames)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    heartbeat_interval: float = Field(default=5.0, gt=0)
    missed_heartbeats: int = Field(default=3, ge=1, description="rule 10: silence that closes")
    window: int = Field(default=1000, ge=1, description="unacknowledged frames per stream")
    replay_batch: int = Field(default=100, ge=1, description="backlog frames per pump")
    live_batch: int = Field(default=500, ge=1, description="live frames per pump")
    resend_grace: float = Field(
        default=2.0,
        ge=0,
        description="how long a ResendRequest for a frame already sent on this connection waits "
        "for the Ack that shows the frame was only in flight",
    )
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_max: float = Field(default=30.0, gt=0)
    jitter: float = Field(
        default=0.5, ge=0, le=1, description="a delay is drawn from [(1 - jitter) d, d]"
    )

    @model_validator(mode="after")
    def _ordered(self) -> LinkPolicy:
        if self.backoff_max < self.backoff_initial:
            raise ValueError("backoff_max must be >= backoff_initial")
        return self

    def backoff(self, attempt: int, draw: float) -> float:
        """Delay before reconnect attempt number `attempt` (0-based); `draw` is in [0, 1)."""
        base = min(self.backoff_max, self.backoff_initial * self.backoff_factor ** min(attempt, 64))
        return base * (1.0 - self.jitter * draw)


@dataclass(frozen=True)
class Send:
    """Put one text frame on the socket, in the order the actions are returned."""

    frame: str
    seq: int | None = None
    historical: bool = False


@dataclass(frozen=True)
class Close:
    """Close the socket; the shell then reports `disconnected`."""

    reason: str


@dataclass(frozen=True)
class ScheduleReconnect:
    delay: float


@dataclass(frozen=True)
class Execute:
    """Run a command against the engine, then report `command_finished`."""

    command: Command


@dataclass(frozen=True)
class Span:
    """Committed frames with seq > after (and <= upto), at most `limit` of them."""

    after: int
    limit: int
    upto: int | None = None


@dataclass(frozen=True, eq=False)
class ReadOutbox:
    """Read these spans off the event loop, then report them with `outbox_read(self, ...)`.

    Compared by identity: the machine accepts the answer to the request it is waiting for only.
    """

    live: Span | None
    backlog: Span | None

    def run(self, store: OutboxReader) -> tuple[list[StoredFrame], list[StoredFrame]]:
        """The reads themselves; blocking, for the shell to call in a worker thread."""
        live, backlog = self.live, self.backlog
        return (
            [] if live is None else store.read(live.after, live.limit, live.upto),
            [] if backlog is None else store.read(backlog.after, backlog.limit, backlog.upto),
        )


@dataclass(frozen=True, eq=False)
class Rebase:
    """Call `Outbox.rebase(above)` off the event loop (it commits), then report `rebased`."""

    above: int


Action = Send | Close | ScheduleReconnect | Execute | ReadOutbox | Rebase


class Phase(StrEnum):
    DISCONNECTED = "disconnected"
    REGISTERING = "registering"
    ONLINE = "online"
    CLOSING = "closing"


class LinkMachine:
    """One engine's link state across connections (the outbox outlives every connection)."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        session_id: str,
        engine_version: str,
        policy: LinkPolicy | None = None,
        random: Callable[[], float],
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.engine_version = engine_version
        self.policy = policy or LinkPolicy()
        self._random = random
        self.phase = Phase.DISCONNECTED
        self.attempt = 0
        self.acked_seq = 0
        self.clock_offset = 0.0
        """Aggregator clock minus ours, as the aggregator measured it (Registered)."""
        self.engine_id: str | None = None
        self._peer_interval = self.policy.heartbeat_interval
        self._connected_at = 0.0
        self._last_heard = 0.0
        self._last_heartbeat = 0.0
        self._replay_next = 1
        self._replay_end = 0
        self._live_next = 1
        self._resend_watch: tuple[int, float] | None = None
        self._loading: ReadOutbox | None = None
        self._rebasing: tuple[Rebase, Registered, float] | None = None
        self.live_watched = True
        """LiveDemand (1.4): does anyone watch this unit? Each connection starts watched, so
        an aggregator that never says (older than 1.4) gets every scan's changes."""
        self._peer_takes_live_tags = False

    # --- properties for the shell and for status ---------------------------------------------

    @property
    def online(self) -> bool:
        return self.phase is Phase.ONLINE

    @property
    def replaying(self) -> bool:
        return self.online and self._replay_next <= self._replay_end

    @property
    def has_more(self) -> bool:
        """True when `pump` would ask for something now (the shell pumps again after yielding)."""
        if not self.online or self._loading is not None:
            return False
        if self._live_next <= self.store.committed_seq and self._live_room() > 0:
            return True
        return self.replaying and self._backlog_room() > 0

    @property
    def live_tags_now(self) -> bool:
        """May a scan's live changes go as a `LiveTags` frame right now (1.5)?

        Only to an aggregator that takes them, while the unit is watched, and only when every
        stored message emitted so far has been sent: a live frame never overtakes one, so the
        aggregator sees the unit's news in the order the scan made it. Otherwise the changes go
        the stored way (`TagsUpdated`, `sample: false`), as before 1.5."""
        return (
            self.phase is Phase.ONLINE
            and self.live_watched
            and self._peer_takes_live_tags
            and self._live_next > self.store.assigned_seq
        )

    @property
    def send_interval(self) -> float:
        return min(self.policy.heartbeat_interval, self._peer_interval)

    # --- connection events --------------------------------------------------------------------

    def connected(self, now: float, registration: Registration) -> list[Action]:
        """The socket is open: register first (rule 1) and wait for Registered."""
        self.phase = Phase.REGISTERING
        self._loading = self._rebasing = None
        self.engine_id = registration.engine_id
        self._connected_at = self._last_heard = self._last_heartbeat = now
        register = RegisterEngine(
            engine_id=registration.engine_id,
            computer_name=registration.computer_name,
            uod_name=registration.uod_name,
            session_id=self.session_id,
            engine_version=self.engine_version,
            protocol_version=PROTOCOL_VERSION,
            uod=registration.uod,
            uod_hash=registration.uod_hash,
            method_hash=registration.method_hash,
            clock=now,
            last_seq=self.store.committed_seq,
        )
        return [Send(register.model_dump_json())]

    def connect_failed(self, now: float) -> list[Action]:
        return self.disconnected(now)

    def disconnected(self, now: float) -> list[Action]:
        self.phase = Phase.DISCONNECTED
        self._loading = self._rebasing = None
        return [ScheduleReconnect(self._next_delay())]

    # --- frames from the aggregator -----------------------------------------------------------

    def frame_received(self, data: str | bytes, now: float) -> list[Action]:
        if self.phase in (Phase.DISCONNECTED, Phase.CLOSING):
            return []
        self._last_heard = now
        try:
            message = decode(data)
        except ProtocolError as exc:
            if exc.rule == 12:
                log.error("aggregator refused: %s", exc.message)
                return self._close(f"incompatible protocol: {exc.message}")
            log.warning("bad frame from the aggregator: %s", exc)
            return [
                Send(ProtocolErrorMessage(rule=exc.rule, message=exc.message).model_dump_json())
            ]
        if isinstance(message, Registered):
            return self.registered(message, now)
        if isinstance(message, ProtocolErrorMessage):
            log.warning(
                "aggregator reports a protocol error (rule %s%s): %s",
                message.rule,
                f", seq {message.seq}" if message.seq is not None else "",
                message.message,
            )
            return []
        if self.phase is not Phase.ONLINE:
            log.warning("ignoring %s received before Registered", message.type)
            return []
        if isinstance(message, Ack):
            return self.acked(message, now)
        if isinstance(message, ResendRequest):
            return self.resend_requested(message, now)
        if isinstance(message, Ping):
            return self.command_finished(message.id, ok=True)
        if isinstance(message, LiveDemand):
            self.live_watched = message.watched  # read by the scan (engine/live_rate.py)
            return []
        if isinstance(message, SetMethod) and self._expired(message, now):
            return self.command_finished(
                message.id,
                ok=False,
                error="the method edit arrived after the aggregator stopped waiting for it; "
                "it was not applied",
                data={"expired": True},
            )
        if isinstance(message, Command):
            return [Execute(message)]
        error = ProtocolErrorMessage(
            rule=9, message=f"the engine does not accept {message.type} frames"
        )
        return [Send(error.model_dump_json())]

    def _expired(self, message: SetMethod, now: float) -> bool:
        """Past its deadline, the aggregator has told the editor the edit was not saved: applying
        it now would change the method behind everyone's back."""
        if message.deadline is None or message.dry_run:
            return False
        if now + self.clock_offset <= message.deadline:
            return False
        log.warning(
            "method edit %s by %s refused: %.1f s past its deadline",
            message.id,
            message.user,
            now + self.clock_offset - message.deadline,
        )
        return True

    def registered(self, message: Registered, now: float) -> list[Action]:
        """Rule 2 and 6: drop what is stored, then replay the rest in order."""
        if self.phase is not Phase.REGISTERING or self._rebasing is not None:
            log.warning("ignoring an unexpected Registered")
            return []
        if self.engine_id is not None and message.engine_id != self.engine_id:
            log.warning(
                "aggregator registered us as %r, expected %r", message.engine_id, self.engine_id
            )
        if message.last_seq > self.store.committed_seq:
            request = Rebase(message.last_seq)
            self._rebasing = (request, message, now)
            return [request]
        return self._go_online(message, now)

    def rebased(self, request: Rebase, shift: int) -> list[Action]:
        """The outbox is renumbered above what the aggregator stored: registration goes on."""
        pending = self._rebasing
        if pending is None or pending[0] is not request or self.phase is not Phase.REGISTERING:
            return []
        self._rebasing = None
        _, message, now = pending
        log.warning(
            "the aggregator has stored up to seq %d but this outbox had only numbered %d "
            "(new data directory, or a power loss); held messages renumbered by +%d",
            message.last_seq,
            self.store.committed_seq - shift,
            shift,
        )
        return self._go_online(message, now)

    def _go_online(self, message: Registered, now: float) -> list[Action]:
        """Replay from what the aggregator stored; the first read shows what is gone."""
        stored = message.last_seq
        if stored:
            self.store.ack(stored)
        self.acked_seq = stored
        high = self.store.committed_seq
        self._replay_next = stored + 1
        self._replay_end = high
        self._live_next = high + 1
        self._peer_interval = message.heartbeat_interval
        self.clock_offset = message.clock_offset
        self._resend_watch = None
        self.live_watched = True
        self._peer_takes_live_tags = at_least(message.protocol_version, LIVE_TAGS_VERSION)
        self.phase = Phase.ONLINE
        self.attempt = 0
        self._last_heartbeat = now
        return self.pump(now)

    def acked(self, message: Ack, now: float) -> list[Action]:
        """Rule 5: cumulative; an old or repeated Ack changes nothing."""
        seq = message.seq
        if seq <= self.acked_seq:
            return []
        highest = self._live_next - 1
        if seq > highest:
            log.warning(
                "Ack %d is beyond the highest seq sent (%d); ignoring the excess", seq, highest
            )
            seq = highest
            if seq <= self.acked_seq:
                return []
        self.store.ack(seq)
        self.acked_seq = seq
        if self._replay_next <= seq:
            self._replay_next = seq + 1
        if self._resend_watch is not None and seq >= self._resend_watch[0]:
            self._resend_watch = None  # it was only in flight
        return self.pump(now)

    def resend_requested(self, message: ResendRequest, now: float) -> list[Action]:
        """Rule 7: resend from N; what the outbox no longer holds is reported as gone.

        The aggregator asks as soon as a frame arrives beyond a missing seq, which is normal
        while live frames overtake the backlog (rule 8). A frame already sent on this connection
        is then almost always still in flight (the socket keeps order), so resending at once
        would duplicate up to a whole window. Such a request waits `resend_grace` for an Ack
        that covers it and is honoured only if none comes.
        """
        actions: list[Action] = []
        start = message.from_seq
        available = self.acked_seq + 1  # a hole above it is reported when the replay reads it
        if start < available:
            if start < self._live_next:
                actions.append(self._gone(start, available))
            start = available
        not_sent_yet = start >= self._live_next or (
            self.replaying and self._replay_next <= start <= self._replay_end
        )
        if not not_sent_yet and (self._resend_watch is None or start < self._resend_watch[0]):
            self._resend_watch = (start, now)
        return actions + self.pump(now)

    def _rewind(self, start: int) -> None:
        """Resend everything sent from `start` on, as backlog (historical), in order."""
        self._replay_next = min(start, self._replay_next) if self.replaying else start
        self._replay_end = self._live_next - 1

    def command_finished(
        self, command_id: str, *, ok: bool, error: str | None = None, data: JsonValue = None
    ) -> list[Action]:
        """Rule 9: every request gets a CommandResult correlated by id."""
        if not self.online:
            return []
        result = CommandResult(
            id=command_id, seq=self.store.committed_seq, ok=ok, error=error, data=data
        )
        return [Send(result.model_dump_json())]

    # --- time and sending ------------------------------------------------------------------

    def tick(self, now: float) -> list[Action]:
        """Heartbeat timer (rule 10); also the registration timeout and a pump."""
        if self._last_heard > now:  # the clock stepped back: restart the timers from now
            self._last_heard = now
        if self._last_heartbeat > now:
            self._last_heartbeat = now
        if self.phase is Phase.REGISTERING:
            limit = self.policy.missed_heartbeats * self.policy.heartbeat_interval
            if now - self._connected_at >= limit:
                return self._close(f"no Registered within {limit:g} s")
            return []
        if self.phase is not Phase.ONLINE:
            return []
        limit = self.policy.missed_heartbeats * self._peer_interval
        if now - self._last_heard >= limit:
            return self._close(f"nothing heard from the aggregator for {limit:g} s")
        actions: list[Action] = []
        watch = self._resend_watch
        if watch is not None and now - watch[1] >= self.policy.resend_grace:
            self._resend_watch = None
            if watch[0] > self.acked_seq:
                log.info("resending from seq %d as the aggregator asked", watch[0])
                self._rewind(max(watch[0], self.acked_seq + 1))
        if now - self._last_heartbeat >= self.send_interval:
            self._last_heartbeat = now
            beat = Heartbeat(seq=self.store.committed_seq, time=now)
            actions.append(Send(beat.model_dump_json()))
        return actions + self.pump(now)

    def pump(self, now: float) -> list[Action]:
        """Ask for what is due: live frames and at most one backlog batch (rule 8)."""
        if not self.online or self._loading is not None:
            return []
        live = backlog = None
        room = self._live_room()
        if room > 0 and self._live_next <= self.store.committed_seq:
            live = Span(self._live_next - 1, min(room, self.policy.live_batch))
        room = self._backlog_room()
        if self.replaying and room > 0:
            limit = min(room, self.policy.replay_batch)
            backlog = Span(self._replay_next - 1, limit, self._replay_end)
        if live is None and backlog is None:
            return []
        self._loading = ReadOutbox(live, backlog)
        return [self._loading]

    def outbox_read(
        self, request: ReadOutbox, live: list[StoredFrame], backlog: list[StoredFrame]
    ) -> list[Action]:
        """Send what was read: a hole in the backlog reported first, then live, then backlog."""
        if request is not self._loading:
            return []
        self._loading = None
        if not self.online:
            return []
        actions: list[Action] = []
        span = request.backlog
        fresh = span is not None and (span.after, span.upto) == (
            self._replay_next - 1,
            self._replay_end,
        )
        if span is not None and fresh:
            end = backlog[0].seq if backlog else self._replay_end + 1
            if end > span.after + 1:
                actions.append(self._gone(span.after + 1, end))
        if request.live is not None and request.live.after == self._live_next - 1:
            for stored in live:
                actions.append(Send(stored.frame, stored.seq))
                self._live_next = stored.seq + 1
        if fresh:
            if not backlog:
                self._replay_next = self._replay_end + 1
            for stored in backlog:
                actions.append(_historical(stored))
                self._replay_next = stored.seq + 1
        return actions

    # --- internals -------------------------------------------------------------------------

    def _live_room(self) -> int:
        in_flight = (self._live_next - 1) - max(self.acked_seq, self._replay_end)
        return self.policy.window - max(0, in_flight)

    def _backlog_room(self) -> int:
        return self.policy.window - max(0, (self._replay_next - 1) - self.acked_seq)

    def _close(self, reason: str) -> list[Action]:
        self.phase = Phase.CLOSING
        return [Close(reason)]

    def _gone(self, first: int, end: int) -> Send:
        """Tell the aggregator that [first, end) cannot be resent, so it records the gap."""
        text = (
            f"messages {first}..{end - 1} are no longer in the engine's outbox; "
            f"resending from {end}"
        )
        log.warning("%s", text)
        gone = ProtocolErrorMessage(rule=7, message=text, seq=first, seq_end=end - 1)
        return Send(gone.model_dump_json())

    def _next_delay(self) -> float:
        delay = self.policy.backoff(self.attempt, self._random())
        self.attempt += 1
        return delay


def _historical(stored: StoredFrame) -> Send:
    """Backlog TagsUpdated are marked historical so they never overwrite live values (rule 8)."""
    if stored.kind != "TagsUpdated":
        return Send(stored.frame, stored.seq, historical=True)
    message = as_historical(TagsUpdated.model_validate_json(stored.frame))
    return Send(message.model_dump_json(), stored.seq, historical=True)
