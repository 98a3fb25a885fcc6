"""Per-connection bookkeeping of the engine stream: dedup, gaps and acks (rules 5, 6, 7).

Sans-I/O: fed with decoded messages and the current time, it returns what the I/O shell must do
(store, compare with the stored copy, ask for a resend, record a gap). Keeping these decisions
out of the socket code lets every corner of rules 5-7 be tested without a network.

Messages are stored strictly in seq order. Arrival order is not seq order: after a reconnect the
engine interleaves its live stream with the replay of its backlog (rule 8), so a frame beyond
the next expected seq is normal and is held here (not stored, not acked) until the seqs before it
arrive. It still reaches the live view at once through the I/O shell.

A hole becomes a recorded gap (rule 7) only on evidence that the engine cannot fill it:
- the engine says so (a ProtocolError with rule 7 naming the seqs no longer in its outbox);
- the engine resends a message we already hold beyond the hole (its resend starts later);
- nothing fills the hole for `resend_timeout` seconds after we asked for it, counted only while
  all we accepted is committed and acknowledged (the engine may be waiting for an Ack).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aggregator.budget import ByteBudget
from protocol import STORED_MESSAGE_TYPES, StoredMessage, TagsUpdated, content_digest, decode

DIGEST_PREFIX = "2:"
_NOT_HISTORICAL = {"tags": {"__all__": {"historical"}}}


def message_digest(message: StoredMessage) -> str:
    """What rule 6 compares a resent copy with: the content of a message, without the
    transport-only `historical` flags that a replayed TagsUpdated carries.

    Computed for every stored message, so it must be cheap: pydantic's own JSON serializer
    (in Rust, fields in declaration order, so the same content always gives the same text)
    instead of protocol.content_digest's model_dump + sorted json.dumps, which cost about as much
    as the rest of a 10-tag message's ingest. The digest of the raw frame would be cheaper still,
    but a replayed TagsUpdated is not byte-identical to its first copy (historical flags), nor is
    any frame re-encoded by a newer engine, so it would report false integrity errors. Prefixed
    with a version so that digests stored before (plain content_digest) are still compared the
    old way (Storage._compare); BLAKE2b-248 keeps prefix + hex within the 64-character column.
    """
    if isinstance(message, TagsUpdated):
        text = message.model_dump_json(exclude=_NOT_HISTORICAL)
    else:
        text = message.model_dump_json()
    return DIGEST_PREFIX + hashlib.blake2b(text.encode(), digest_size=31).hexdigest()


def same_content(stored: str, message: StoredMessage, digest: str) -> bool:
    """Whether a resent message says what the stored digest says, for either digest version."""
    if stored.startswith(DIGEST_PREFIX):
        return stored == digest
    return stored == content_digest(message)


@dataclass(frozen=True)
class Store:
    """A new message, next in seq order: store it and its digest."""

    message: StoredMessage
    digest: str
    size: int = 0
    """The frame's size in bytes, as far as known: what the link holds until it is stored."""


@dataclass(frozen=True)
class CompareStored:
    """A resent message whose seq was already handed to storage: compare with the stored copy."""

    message: StoredMessage
    digest: str
    size: int = 0


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
    reason: str


@dataclass(frozen=True)
class Overflow:
    """Too many frames, or bytes, held beyond a hole: drop the link; the engine resends in
    order."""

    held: int
    held_bytes: int = 0
    from_seq: int = 0


Action = Store | CompareStored | IntegrityError | RequestResend | RecordGap | Overflow


class IngestSession:
    """Decisions for one engine connection; one instance per websocket."""

    def __init__(
        self,
        stored_seq: int,
        *,
        now: float = 0.0,
        resend_timeout: float = 5.0,
        max_held: int = 5000,
        budget: ByteBudget | None = None,
    ) -> None:
        self.committed = stored_seq
        """Highest seq whose transaction has committed: what an Ack may say (rule 5)."""
        self.accepted = stored_seq
        """Highest seq handed to storage (or given up as a gap); the next expected is one above."""
        self._pending: dict[int, str] = {}
        self._held: dict[int, tuple[StoredMessage | bytes | str, str, int]] = {}
        """seq -> (the frame as received, its digest, its size in bytes): kept as the raw
        frame when given, so what the budget counts is what memory holds."""
        self._gone: list[tuple[int, int]] = []
        self._requested_for: int | None = None
        self._progress_at = now
        self._tail_suspect: int | None = None
        self._resend_timeout = resend_timeout
        self._max_held = max_held
        self._budget = budget

    @property
    def expected(self) -> int:
        return self.accepted + 1

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def held_bytes(self) -> int:
        return sum(item[2] for item in self._held.values())

    def close(self) -> None:
        """The connection is gone: forget what was held and give its bytes back."""
        self._held.clear()
        if self._budget is not None:
            self._budget.close()

    # --- events ----------------------------------------------------------------------------------

    def on_message(
        self, message: StoredMessage, now: float, raw: bytes | str | None = None
    ) -> list[Action]:
        """`raw`: the frame `message` was decoded from; held instead of the message when the
        message has to wait, and counted against the budget by its length."""
        digest = message_digest(message)
        seq = message.seq
        size = len(raw) if raw is not None else 0
        out: list[Action] = []
        if seq <= self.accepted:
            self._duplicate(message, digest, size, out)
            return out
        held = self._held.get(seq)
        if held is not None:
            if held[1] != digest:
                out.append(self._integrity(message))
            # The engine is resending from beyond the hole: it no longer has what is missing.
            self._give_up("the engine resent from a later seq", now, out)
            return out
        if seq > self.expected:
            if self._budget is not None and not self._budget.take(size):
                out.append(Overflow(len(self._held), self.held_bytes + size, self.expected))
                return out
            if not self._held:
                self._progress_at = now
            self._held[seq] = (raw if raw is not None else message, digest, size)
            if self._requested_for != self.expected:
                self._requested_for = self.expected
                out.append(RequestResend(self.expected))
            if len(self._held) > self._max_held:
                out.append(Overflow(len(self._held), self.held_bytes, self.expected))
            return out
        self._accept(message, digest, now, out, size)
        self._advance(now, out)
        return out

    def on_engine_gone(self, first: int, last: int | None, now: float) -> list[Action]:
        """The engine reports (ProtocolError, rule 7) that seqs first..last left its outbox."""
        out: list[Action] = []
        if last is None:
            # No range given: everything before the next message we hold is gone.
            self._give_up("the engine no longer has them", now, out)
            return out
        if last >= self.expected:
            self._gone.append((first, last))
            self._advance(now, out)
        return out

    def on_heartbeat(self, engine_seq: int, now: float) -> list[Action]:
        """A heartbeat above what we have is a tail gap only if two in a row see no progress:
        the messages may simply still be on their way (rule 7)."""
        if engine_seq <= self.accepted or self._held:
            self._tail_suspect = None
            return []
        if self._tail_suspect == self.accepted:
            self._tail_suspect = None
            self._requested_for = self.expected
            self._progress_at = now
            return [RequestResend(self.expected)]
        self._tail_suspect = self.accepted
        return []

    def resend_deadline(self) -> float | None:
        """When `on_tick` gives up on the missing frames unless they come; None: none missing."""
        return self._progress_at + self._resend_timeout if self._held else None

    def on_tick(self, now: float) -> list[Action]:
        if self.committed < self.accepted:
            # Our own commit is pending: the engine may be waiting for that Ack before it sends
            # more, so its silence says nothing yet.
            self._progress_at = now
            return []
        if not self._held or now - self._progress_at < self._resend_timeout:
            return []
        out: list[Action] = []
        self._give_up(f"not resent within {self._resend_timeout:g} s", now, out)
        return out

    def on_committed(self, seq: int, now: float | None = None) -> int:
        """Storage committed everything up to `seq`; returns the seq to acknowledge."""
        if now is not None and self._held:
            self._progress_at = max(self._progress_at, now)  # the engine gets the Ack only now
        if seq > self.committed:
            self.committed = seq
            for done in [s for s in self._pending if s <= seq]:
                del self._pending[done]
        return self.committed

    # --- internals -------------------------------------------------------------------------------

    def _accept(
        self, message: StoredMessage, digest: str, now: float, out: list[Action], size: int = 0
    ) -> None:
        self.accepted = message.seq
        self._pending[message.seq] = digest
        self._tail_suspect = None
        self._progress_at = now
        out.append(Store(message, digest, size))

    def _advance(self, now: float, out: list[Action]) -> None:
        """Move the stored prefix forward over held messages and gaps the engine declared."""
        while True:
            item = self._held.pop(self.expected, None)
            if item is not None:
                if self._budget is not None:
                    self._budget.give(item[2])
                self._accept(_message(item[0]), item[1], now, out, item[2])
                continue
            gone = next(((a, b) for a, b in self._gone if a <= self.expected <= b), None)
            if gone is not None:
                out.append(RecordGap(self.expected, gone[1], "the engine no longer has them"))
                self.accepted = gone[1]
                self._progress_at = now
                continue
            break
        self._gone = [(a, b) for a, b in self._gone if b > self.accepted]
        if not self._held:
            self._requested_for = None

    def _give_up(self, reason: str, now: float, out: list[Action]) -> None:
        if not self._held:
            return
        first_held = min(self._held)
        out.append(RecordGap(self.expected, first_held - 1, reason))
        self.accepted = first_held - 1
        self._advance(now, out)

    def _integrity(self, message: StoredMessage) -> IntegrityError:
        return IntegrityError(
            message.seq,
            f"resent {message.type} seq {message.seq} differs from the copy received first; "
            "the first copy is kept",
        )

    def _duplicate(self, message: StoredMessage, digest: str, size: int, out: list[Action]) -> None:
        first = self._pending.get(message.seq)
        if first is None:
            out.append(CompareStored(message, digest, size))
        elif first != digest:
            out.append(self._integrity(message))


def _message(held: StoredMessage | bytes | str) -> StoredMessage:
    """A held frame as its message again: it was decoded once already, so this cannot fail."""
    if not isinstance(held, bytes | str):
        return held
    message = decode(held)
    assert isinstance(message, STORED_MESSAGE_TYPES)
    return message
