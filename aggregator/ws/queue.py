"""A bounded outbox per websocket client that never blocks the publisher.

Ingest publishes synchronously and must never wait on a browser, so each client gets its own
queue and the publisher only appends. When a client falls behind, changes that can be merged are
merged in place (newest value wins: a tag's older value is worthless once a newer one exists; a
unit summary or method view is replaced whole), so a stalled client costs bounded memory. Changes
that cannot be merged (new run-log lines, new errors) count against the limits, in frames and in
bytes (of their JSON text; per client and for all clients together, aggregator/budget.py); past
either the queue is marked overflowed and the I/O shell closes the socket so the client
resubscribes and gets a fresh snapshot, instead of silently missing lines. Snapshots and answers
to the client's own requests are counted but never refused: there is one snapshot per topic, and
answers are bounded by what the client may have pending.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from aggregator.budget import ByteBudget

Merge = Literal["append", "replace", "by_key"]


class SharedFrame:
    """A change as published to every subscriber of its topic: its JSON text is made once, by
    the first client writer that sends it unchanged, and reused by the others (100 browsers
    watching one unit would otherwise serialize every change 100 times)."""

    __slots__ = ("_text", "frame")

    def __init__(self, topic: str, data: Any) -> None:
        self.frame: dict[str, Any] = {"topic": topic, "kind": "change", "data": data}
        self._text: str | None = None

    def text(self) -> str:
        if self._text is None:
            self._text = encode_frame(self.frame)
        return self._text


def encode_frame(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


@dataclass
class _Pending:
    """One queued frame; `by_key` frames accumulate items until the client takes them."""

    topic: str
    kind: str
    merge: Merge
    slot: str = ""
    data: Any = None
    items: dict[str, Any] = field(default_factory=dict)
    shared: SharedFrame | None = None
    """The published frame this one still equals (nothing merged into it), if any."""
    size: int = 0
    """Bytes counted for it: its JSON text, or an estimate while changes are merged in."""
    item_sizes: dict[str, int] = field(default_factory=dict)

    def frame(self) -> dict[str, Any]:
        if self.merge == "by_key":
            data: Any = list(self.items.values())
        else:
            data = self.data
        return {"topic": self.topic, "kind": self.kind, "data": data}

    def text(self) -> str:
        return self.shared.text() if self.shared is not None else encode_frame(self.frame())


@dataclass
class _Ready:
    """A frame that is never merged, kept as the text to send."""

    topic: str | None
    text: str


def change_size(data: Any, shared: SharedFrame | None) -> int:
    """Bytes of a published change: its JSON text, made once for all its subscribers."""
    return len(shared.text()) if shared is not None else len(encode_frame({"data": data}))


class ClientQueue:
    """Frames waiting for one client, in order, with coalescing of mergeable changes."""

    def __init__(self, limit: int = 1000, budget: ByteBudget | None = None) -> None:
        self.limit = limit
        self.budget = budget if budget is not None else ByteBudget(1 << 62)
        self.overflowed = False
        self._frames: deque[_Pending | _Ready] = deque()
        self._open: dict[tuple[str, str], _Pending] = {}
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def bytes(self) -> int:
        return self.budget.used

    def _room(self, size: int = 0) -> bool:
        if len(self._frames) >= self.limit or not self.reserve(size):
            self.overflowed = True
            return False
        return True

    def reserve(self, size: int) -> bool:
        """Count `size` bytes if they fit (one frame always fits into an empty queue)."""
        if self.budget.used and not self.budget.fits(size):
            return False
        self.budget.force(size)
        return True

    def release(self, size: int) -> None:
        self.budget.give(size)

    def close(self) -> None:
        """The client is gone: drop everything and give its bytes back."""
        self._frames.clear()
        self._open.clear()
        self.budget.close()

    def put_frame(self, frame: dict[str, Any]) -> bool:
        """A frame that is never merged (answers to actions, pings, snapshots)."""
        if len(self._frames) >= self.limit:
            self.overflowed = True
            return False
        text = encode_frame(frame)
        self.budget.force(len(text))
        self._frames.append(_Ready(frame.get("topic"), text))
        return True

    def put_change(
        self,
        topic: str,
        data: Any,
        *,
        merge: Merge = "append",
        key: str = "name",
        kind: str = "change",
        slot: str | None = None,
        shared: SharedFrame | None = None,
    ) -> bool:
        """Queue a change; returns False when the queue overflowed (the client must be dropped).

        merge="by_key": `data` is a list of dicts; items with the same `key` replace each other
        while the frame is still waiting. merge="replace": a waiting frame of the same topic is
        replaced (per `slot` when given, e.g. one unit's summary within `units`).
        merge="append": always a new frame.
        `shared`: the same change as a frame every subscriber gets (see SharedFrame); kept only
        while nothing is merged into this client's frame.
        """
        if shared is not None and kind != "change":
            shared = None
        slot_key = (topic, slot or "")
        waiting = self._open.get(slot_key)
        size = change_size(data, shared)
        if merge == "by_key":
            each = size // max(1, len(data))
            if waiting is not None:
                # bounded by the number of keys, so counted but never refused
                for item in data:
                    name = str(item.get(key))
                    waiting.items.pop(name, None)
                    waiting.items[name] = item
                    self.budget.give(waiting.item_sizes.get(name, 0))
                    self.budget.force(each)
                    waiting.item_sizes[name] = each
                waiting.shared = None
                self.coalesced += 1
                return True
            items = {str(i.get(key)): i for i in data}
            if not self._room(each * len(items)):
                return False
            pending = _Pending(
                topic,
                kind,
                merge,
                slot or "",
                items=items,
                shared=shared if len(items) == len(data) else None,
                item_sizes=dict.fromkeys(items, each),
            )
            self._open[slot_key] = pending
            self._frames.append(pending)
            return True
        if merge == "replace" and waiting is not None:
            waiting.data = data
            waiting.shared = shared  # replaced whole: the newest change's frame
            self.budget.give(waiting.size)
            self.budget.force(size)
            waiting.size = size
            self.coalesced += 1
            return True
        if not self._room(size):
            return False
        pending = _Pending(topic, kind, merge, slot or "", data=data, shared=shared, size=size)
        if merge == "replace":
            self._open[slot_key] = pending
        self._frames.append(pending)
        return True

    def drop_topic(self, topic: str) -> None:
        """After unsubscribe nothing more of the topic is delivered."""
        kept: deque[_Pending | _Ready] = deque()
        for f in self._frames:
            if f.topic == topic:
                self.budget.give(_size(f))
            else:
                kept.append(f)
        self._frames = kept
        for slot in [s for s in self._open if s[0] == topic]:
            del self._open[slot]

    def _take(self, max_frames: int, max_bytes: int) -> list[_Pending | _Ready]:
        out: list[_Pending | _Ready] = []
        taken = 0
        while self._frames and len(out) < max_frames and (not out or taken < max_bytes):
            item = self._frames.popleft()
            if isinstance(item, _Pending) and self._open.get((item.topic, item.slot)) is item:
                del self._open[(item.topic, item.slot)]
            size = _size(item)
            self.budget.give(size)
            taken += size
            out.append(item)
        return out

    def take(self, max_frames: int = 100) -> list[dict[str, Any]]:
        """Remove and return up to `max_frames` frames, oldest first."""
        return [
            i.frame() if isinstance(i, _Pending) else json.loads(i.text)
            for i in self._take(max_frames, 1 << 62)
        ]

    def take_encoded(self, max_frames: int = 100, max_bytes: int = 1 << 20) -> list[str]:
        """`take`, as the JSON texts to send (up to about `max_bytes` of them, so that what the
        writer has taken and not yet sent stays small); a change nobody merged into is encoded
        once for all its subscribers."""
        return [
            i.text() if isinstance(i, _Pending) else i.text
            for i in self._take(max_frames, max_bytes)
        ]


def _size(item: _Pending | _Ready) -> int:
    if isinstance(item, _Ready):
        return len(item.text)
    return sum(item.item_sizes.values()) if item.merge == "by_key" else item.size
