"""Timelines: positions that advance only while the run is not Paused or Holding.

Rather than one counter per block or scope, there is one set of monotonic counters (seconds and,
per accumulator tag, its accumulated amount) that only move while timelines run; a timeline is a
snapshot of those counters at its start, so its position is a subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TIME = ""  # the counter key of the time timeline; other keys are accumulator tag names


@dataclass(slots=True)
class Clocks:
    time: float = 0.0
    amounts: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> Timeline:
        return Timeline(self.time, dict(self.amounts) if self.amounts else {})

    def value(self, kind: str) -> float:
        return self.time if kind == TIME else self.amounts.get(kind, 0.0)


@dataclass(frozen=True, slots=True)
class Timeline:
    start_time: float
    start_amounts: dict[str, float]

    def position(self, clocks: Clocks, kind: str) -> float:
        if kind == TIME:
            return clocks.time - self.start_time
        return clocks.amounts.get(kind, 0.0) - self.start_amounts.get(kind, 0.0)
