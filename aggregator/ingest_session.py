"""Per-connection bookkeeping of the engine stream: dedup, gaps and acks (rules 5, 6, 7).

Sans-I/O: fed with decoded messages and the current time, it returns what the I/O shell must do
(store, compare with the stored copy, ask for a resend, record a gap, ack). Keeping these
decisions out of the socket code lets every corner of rules 5-7 be tested without a network.

Gap handling has to cope with messages already in flight when we ask for a resend: after a
`ResendRequest` the engine rewinds its send cursor, so the stream goes *backwards*; until then we
buffer what arrives beyond the gap. A backwards step tells us where the engine's resend starts:
at the missing seq (the gap is filled) or later (the engine no longer has it: the gap is recorded).
An engine that never rewinds is caught by a timeout or by the buffer limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol import StoredMessage, content_digest


@dataclass(frozen=True)
class Store:
    """A new message: store it and its digest."""

    message: StoredMessage
    digest: str


@dataclass(frozen=True)
class CompareStored:
    """A resent message whose seq is already committed: compare with the stored copy (rule 6)."""

    message: StoredMessage
    digest: str


@dataclass(frozen=True)
class IntegrityError:
    """A resent copy differs from the first one, which is kept (rule 6)."""

    seq: int
    text: str


@dataclass(frozen=True)
class RequestResend:
    from_seq: int


@dataclass(frozen=True)
class RecordGap:
    """Messages first..last are lost for good (rule 7): write it in the run's log."""

    first: int
    last: int


Action = Store | CompareStored | IntegrityError | RequestResend | RecordGap


@dataclass
class _Resend:
    from_seq: int
    requested_at: float
    tail: bool
    max_seen: int
    rewound: bool = False
    buffer: list[tuple[StoredMessage, str]] = field(default_factory=list)


class IngestSession:
    """Decisions for one engine connection; one instance per websocket."""

    def __init__(
        self,
        stored_seq: int,
        *,
        resend_timeout: float = 5.0,
        max_buffer: int = 2000,
    ) -> None:
        self.committed = stored_seq
        """Highest seq whose transaction has committed: what an Ack may say (rule 5)."""
        self.accepted = stored_seq
        """Highest seq handed to storage (or given up as a gap); the next expected is one above."""
        self._pending: dict[int, str] = {}
        self._resend: _Resend | None = None
        self._tail_suspect: int | None = None
        self._resend_timeout = resend_timeout
        self._max_buffer = max_buffer

    @property
    def expected(self) -> int:
        return self.accepted + 1

    @property
    def resend_pending(self) -> bool:
        return self._resend is not None

    def on_message(self, message: StoredMessage, now: float) -> list[Action]:
        digest = content_digest(message)
        actions: list[Action] = []
        self._feed(message, digest, now, actions)
        return actions

    def _feed(self, message: StoredMessage, digest: str, now: float, out: list[Action]) -> None:
        seq = message.seq
        resend = self._resend
        if seq <= self.accepted:
            self._duplicate(message, digest, out)
            if resend is not None:
                resend.rewound = True  # the stream went backwards: this is the engine's resend
            return
        if resend is None:
            if seq == self.expected:
                self._accept(message, digest, out)
            else:
                self._resend = _Resend(
                    from_seq=self.expected, requested_at=now, tail=False, max_seen=seq
                )
                self._resend.buffer.append((message, digest))
                out.append(RequestResend(self.expected))
            return
        if seq == self.expected:
            self._resend = None
            self._accept(message, digest, out)
            self._replay_buffer(resend.buffer, now, out)
            return
        if resend.tail or resend.rewound or seq <= resend.max_seen:
            # The engine's resend starts after the gap: it no longer has the missing messages.
            self._resend = None
            out.append(RecordGap(self.expected, seq - 1))
            self.accepted = seq - 1
            self._accept(message, digest, out)
            self._replay_buffer(resend.buffer, now, out)
            return
        resend.max_seen = seq
        resend.buffer.append((message, digest))
        if len(resend.buffer) > self._max_buffer:
            self._give_up(now, out)

    def _replay_buffer(
        self, buffer: list[tuple[StoredMessage, str]], now: float, out: list[Action]
    ) -> None:
        for message, digest in buffer:
            if message.seq > self.accepted:
                self._feed(message, digest, now, out)

    def _give_up(self, now: float, out: list[Action]) -> None:
        resend = self._resend
        assert resend is not None
        self._resend = None
        if not resend.buffer:
            return
        first = resend.buffer[0][0].seq
        out.append(RecordGap(self.expected, first - 1))
        self.accepted = first - 1
        self._replay_buffer(resend.buffer, now, out)

    def _accept(self, message: StoredMessage, digest: str, out: list[Action]) -> None:
        self.accepted = message.seq
        self._pending[message.seq] = digest
        self._tail_suspect = None
        out.append(Store(message, digest))

    def _duplicate(self, message: StoredMessage, digest: str, out: list[Action]) -> None:
        first = self._pending.get(message.seq)
        if first is None:
            out.append(CompareStored(message, digest))
        elif first != digest:
            out.append(
                IntegrityError(
                    message.seq,
                    f"resent {message.type} seq {message.seq} differs from the copy received "
                    "first; the first copy is kept",
                )
            )

    def on_heartbeat(self, engine_seq: int, now: float) -> list[Action]:
        """A heartbeat above what we have is a tail gap only if two in a row see no progress:
        the messages may simply still be on their way (rule 7)."""
        if engine_seq <= self.accepted or self._resend is not None:
            self._tail_suspect = None
            return []
        if self._tail_suspect == self.accepted:
            self._tail_suspect = None
            self._resend = _Resend(
                from_seq=self.expected, requested_at=now, tail=True, max_seen=self.accepted
            )
            return [RequestResend(self.expected)]
        self._tail_suspect = self.accepted
        return []

    def on_tick(self, now: float) -> list[Action]:
        resend = self._resend
        if resend is None or now - resend.requested_at < self._resend_timeout:
            return []
        out: list[Action] = []
        self._give_up(now, out)
        return out

    def on_committed(self, seq: int) -> int:
        """Storage committed everything up to `seq`; returns the seq to acknowledge."""
        if seq > self.committed:
            self.committed = seq
            for done in [s for s in self._pending if s <= seq]:
                del self._pending[done]
        return self.committed
