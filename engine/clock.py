"""Injected clocks: the scan code never reads time itself.

A clock gives monotonic seconds (for the scan grid) and the matching wall-clock UTC epoch seconds
(for timestamps). Wall time is derived from monotonic time with an offset fixed at creation, so
timestamps are consistent with scan time: an NTP step while running does not make the run log go
backwards.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def wall(self, monotonic: float) -> float:
        """Wall-clock UTC epoch seconds at the given monotonic time."""
        ...


class RealClock:
    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self, monotonic: float) -> float:
        return self._offset + monotonic


class FakeClock:
    """A clock that moves only when told; `simulate` and tests drive it."""

    def __init__(self, start: float = 0.0, wall_start: float | None = None) -> None:
        self.now = start
        self._offset = (time.time() if wall_start is None else wall_start) - start

    def monotonic(self) -> float:
        return self.now

    def wall(self, monotonic: float) -> float:
        return self._offset + monotonic

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def set(self, now: float) -> None:
        self.now = now
