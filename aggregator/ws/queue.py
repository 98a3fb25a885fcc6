"""A bounded outbox per websocket client that never blocks the publisher.

Ingest publishes synchronously and must never wait on a browser, so each client gets its own
queue and the publisher only appends. When a client falls behind, changes that can be merged are
merged in place (newest value wins: a tag's older value is worthless once a newer one exists; a
unit summary or method view is replaced whole), so a stalled client costs bounded memory. Changes
that cannot be merged (new run-log lines, new errors) count against the limit; past it the queue
is marked overflowed and the I/O shell closes the socket so the client resubscribes and gets a
fresh snapshot, instead of silently missing lines.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

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

    def frame(self) -> dict[str, Any]:
        if self.merge == "by_key":
            data: Any = list(self.items.values())
        else:
            data = self.data
        return {"topic": self.topic, "kind": self.kind, "data": data}

    def text(self) -> str:
        return self.shared.text() if self.shared is not None else encode_frame(self.frame())


class ClientQueue:
    """Frames waiting for one client, in order, with coalescing of mergeable changes."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.overflowed = False
        self._frames: deque[_Pending | dict[str, Any]] = deque()
        self._open: dict[tuple[str, str], _Pending] = {}
        self.coalesced = 0

    def __len__(self) -> int:
        return len(self._frames)

    def _room(self) -> bool:
        if len(self._frames) >= self.limit:
            self.overflowed = True
            return False
        return True

    def put_frame(self, frame: dict[str, Any]) -> bool:
        """A frame that is never merged (answers to actions, pings, snapshots)."""
        if not self._room():
            return False
        self._frames.append(frame)
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
        if merge == "by_key":
            if waiting is not None:
                for item in data:
                    waiting.items.pop(str(item.get(key)), None)
                    waiting.items[str(item.get(key))] = item
                waiting.shared = None
                self.coalesced += 1
                return True
            if not self._room():
                return False
            items = {str(i.get(key)): i for i in data}
            pending = _Pending(
                topic,
                kind,
                merge,
                slot or "",
                items=items,
                shared=shared if len(items) == len(data) else None,
            )
            self._open[slot_key] = pending
            self._frames.append(pending)
            return True
        if merge == "replace" and waiting is not None:
            waiting.data = data
            waiting.shared = shared  # replaced whole: the newest change's frame
            self.coalesced += 1
            return True
        if not self._room():
            return False
        pending = _Pending(topic, kind, merge, slot or "", data=data, shared=shared)
        if merge == "replace":
            self._open[slot_key] = pending
        self._frames.append(pending)
        return True

    def drop_topic(self, topic: str) -> None:
        """After unsubscribe nothing more of the topic is delivered."""
        self._frames = deque(
            f
            for f in self._frames
            if (f.topic if isinstance(f, _Pending) else f.get("topic")) != topic
        )
        for slot in [s for s in self._open if s[0] == topic]:
            del self._open[slot]

    def _take(self, max_frames: int) -> list[_Pending | dict[str, Any]]:
        out: list[_Pending | dict[str, Any]] = []
        while self._frames and len(out) < max_frames:
            item = self._frames.popleft()
            if isinstance(item, _Pending) and self._open.get((item.topic, item.slot)) is item:
                del self._open[(item.topic, item.slot)]
            out.append(item)
        return out

    def take(self, max_frames: int = 100) -> list[dict[str, Any]]:
        """Remove and return up to `max_frames` frames, oldest first."""
        return [i.frame() if isinstance(i, _Pending) else i for i in self._take(max_frames)]

    def take_encoded(self, max_frames: int = 100) -> list[str]:
        """`take`, as the JSON texts to send; a change nobody merged into is encoded once for
        all its subscribers."""
        return [
            i.text() if isinstance(i, _Pending) else encode_frame(i) for i in self._take(max_frames)
        ]
