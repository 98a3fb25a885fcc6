"""Who watches which unit live, and what each engine has been told (protocol 1.4, LiveDemand).

An engine sends its tag changes every scan only while someone here watches its unit, and only
its data-log samples otherwise (engine/live_rate.py), so the site's cost follows what people
look at. This module decides what to tell each engine; the engine connection sends it.

- Interest comes from sources: the /ws hub (a client subscribed to `unit/<id>/tags` or
  `unit/<id>/control`, aggregator/ws/hub.py), and `everything` for consumers that need every
  value of every unit and cannot say which (a cluster node, whose peers' watchers it cannot see;
  the OPC UA server, whose clients read any value at any time). Such engines are simply never
  told, which leaves them at full rate.
- A rise is told at once (a new watcher should see scan-rate values now). A fall is held
  `hold` seconds and dropped if interest comes back meanwhile, so a page reload or a flapping
  subscription costs no message at all, and an engine gets at most two per `hold`.
- An engine is told its current demand right after `Registered`, on every connection (the
  engine starts every connection watched).

`DemandBook` is sans-I/O (fed the time); `DemandRouter` adds the per-engine send callbacks and
the clock, and is what the app holds (`LiveState.demand`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

HOLD = 5.0
"""Seconds a fall of interest waits before the engine is told (debounce)."""

Tell = tuple[str, bool]
"""(engine id, watched): one LiveDemand to send."""


@dataclass
class _Told:
    watched: bool
    fell_at: float | None = None
    """When interest fell while the engine was told watched; told unwatched `hold` later."""


class DemandBook:
    def __init__(self, hold: float = HOLD) -> None:
        self.hold = hold
        self.everything = False
        """Every unit counts as watched (cluster node, OPC UA server)."""
        self._interest: dict[str, set[str]] = {}
        self._engines: dict[str, _Told] = {}
        self._falling: set[str] = set()

    def watched(self, unit_id: str) -> bool:
        return self.everything or bool(self._interest.get(unit_id))

    @property
    def falling(self) -> bool:
        """Some engine has a fall of interest waiting for its hold to pass."""
        return bool(self._falling)

    def told(self, engine_id: str) -> bool | None:
        """What the engine was last told (None: not attached)."""
        told = self._engines.get(engine_id)
        return None if told is None else told.watched

    def set_interest(self, unit_id: str, source: str, interested: bool, now: float) -> list[Tell]:
        sources = self._interest.setdefault(unit_id, set())
        if interested:
            sources.add(source)
        else:
            sources.discard(source)
            if not sources:
                del self._interest[unit_id]
        return self._reconsider(unit_id, now)

    def attach(self, engine_id: str) -> bool:
        """A newly registered engine: what to tell it now (it starts watched)."""
        watched = self.watched(engine_id)
        self._engines[engine_id] = _Told(watched)
        self._falling.discard(engine_id)
        return watched

    def detach(self, engine_id: str) -> None:
        self._engines.pop(engine_id, None)
        self._falling.discard(engine_id)

    def due(self, now: float) -> list[Tell]:
        """Falls whose hold has passed."""
        out: list[Tell] = []
        for engine_id in list(self._falling):
            told = self._engines.get(engine_id)
            if told is None or told.fell_at is None:
                self._falling.discard(engine_id)
            elif now - told.fell_at >= self.hold:
                self._falling.discard(engine_id)
                told.fell_at = None
                if not self.watched(engine_id):
                    told.watched = False
                    out.append((engine_id, False))
        return out

    def next_due(self) -> float | None:
        """When the earliest held fall's hold passes; None: no fall is held."""
        falls = [
            told.fell_at
            for engine_id in self._falling
            if (told := self._engines.get(engine_id)) is not None and told.fell_at is not None
        ]
        return min(falls) + self.hold if falls else None

    def _reconsider(self, unit_id: str, now: float) -> list[Tell]:
        told = self._engines.get(unit_id)
        if told is None:
            return []
        if self.watched(unit_id):
            told.fell_at = None
            self._falling.discard(unit_id)
            if not told.watched:
                told.watched = True
                return [(unit_id, True)]
            return []
        if told.watched and told.fell_at is None:
            told.fell_at = now
            self._falling.add(unit_id)
        return []


Sender = Callable[[bool], None]


def _nobody(when: float) -> None:
    return None


class DemandRouter:
    """The app's demand book with a clock and one sender per attached engine connection."""

    def __init__(self, hold: float = HOLD, clock: Callable[[], float] = time.monotonic) -> None:
        self.book = DemandBook(hold)
        self._clock = clock
        self._senders: dict[str, Sender] = {}
        self.wake_at: Callable[[float], None] = _nobody
        """Told when a held fall will be due, so that `tick` runs then (link_clock.py)."""
        self.sent = 0
        """LiveDemand messages handed to connections (metrics, tests)."""

    def every_unit_watched(self) -> None:
        """A consumer of every live value joined the app (cluster, OPC UA): full rate for all."""
        self.book.everything = True

    def interest(self, unit_id: str, source: str, interested: bool) -> None:
        self._dispatch(self.book.set_interest(unit_id, source, interested, self._clock()))
        due = self.book.next_due()
        if due is not None:
            self.wake_at(due)

    def ws_interest(self, unit_id: str, watched: bool) -> None:
        """The /ws hub's callback (aggregator/ws/hub.py, `Hub.on_interest`)."""
        self.interest(unit_id, "ws", watched)

    def attach(self, engine_id: str, send: Sender) -> None:
        """Right after Registered: tell the engine its demand now. Not called for engines that
        must stay at full rate (older than 1.4, or every unit watched)."""
        self._senders[engine_id] = send
        self._dispatch([(engine_id, self.book.attach(engine_id))])

    def detach(self, engine_id: str, send: Sender) -> None:
        if self._senders.get(engine_id) == send:  # a bound method is a new object each time
            del self._senders[engine_id]
            self.book.detach(engine_id)

    def tick(self) -> float | None:
        """Tell the held falls that are due (on the link clock's wakes); returns when the next
        one will be."""
        if self.book.falling:
            self._dispatch(self.book.due(self._clock()))
        return self.book.next_due()

    def _dispatch(self, tells: list[Tell]) -> None:
        for engine_id, watched in tells:
            send = self._senders.get(engine_id)
            if send is not None:
                self.sent += 1
                send(watched)
