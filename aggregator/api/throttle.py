"""Login throttling, sans-I/O: fed with (key, now), it says how long a key must wait.

A key is a user name or a client address. After `threshold` failures in a row a key is locked
for `base` seconds; every further failure after a lock doubles it, up to `cap`. A success
forgets the key, and so does `forget` seconds without a failure. At most `max_keys` keys are
remembered (the least recently failed go first), so a flood of made-up names cannot grow it
without bound.

A site of several nodes shares the counts (aggregator/cluster): each node tells the others of
its failures and successes (`on_change`) and applies theirs (`apply`), so that spreading guesses
over the nodes gains nothing. Shared over NATS, not stored: while the nodes cannot reach each
other each throttles alone, which is what one node did before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float = 0.0
    lock: float = 0.0


@dataclass(frozen=True)
class Lockout:
    """A lock that a failure has just begun: which key, for how long, after how many failures."""

    key: str
    seconds: float
    failures: int


class LoginThrottle:
    def __init__(
        self,
        *,
        threshold: int = 5,
        base: float = 30.0,
        cap: float = 900.0,
        forget: float = 3600.0,
        max_keys: int = 10_000,
    ) -> None:
        self.threshold = threshold
        self.base = base
        self.cap = cap
        self.forget = forget
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self.on_change: Callable[[str, list[str]], None] | None = None
        """Told ("failure" or "success", keys) of each attempt counted here (cluster/)."""

    def retry_after(self, keys: list[str], now: float) -> float:
        """Seconds until every key may try again; 0 when none is locked."""
        wait = 0.0
        for key in keys:
            entry = self._current(key, now)
            if entry is not None and entry.locked_until > now:
                wait = max(wait, entry.locked_until - now)
        return wait

    def failure(self, keys: list[str], now: float) -> list[Lockout]:
        """Count a failed attempt against each key; the locks it begins."""
        if self.on_change is not None:
            self.on_change("failure", keys)
        return self._failure(keys, now)

    def apply(self, change: str, keys: list[str], now: float) -> None:
        """Another node's attempt (its on_change), counted here without telling anyone."""
        if change == "failure":
            self._failure(keys, now)
        elif change == "success":
            self._success(keys)

    def _failure(self, keys: list[str], now: float) -> list[Lockout]:
        begun = []
        for key in keys:
            entry = self._current(key, now) or _Failures()
            entry.count += 1
            entry.last = now
            if entry.count >= self.threshold:
                entry.lock = min(self.cap, entry.lock * 2 if entry.lock else self.base)
                entry.locked_until = now + entry.lock
                begun.append(Lockout(key, entry.lock, entry.count))
            self._keys[key] = entry
            self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return begun

    def success(self, keys: list[str]) -> None:
        if self.on_change is not None:
            self.on_change("success", keys)
        self._success(keys)

    def _success(self, keys: list[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    def _current(self, key: str, now: float) -> _Failures | None:
        entry = self._keys.get(key)
        if entry is not None and now - max(entry.last, entry.locked_until) > self.forget:
            del self._keys[key]
            return None
        return entry

    def __len__(self) -> int:
        return len(self._keys)
