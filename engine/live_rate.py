"""Demand-driven live rate (protocol 1.4, `LiveDemand`): what the scan sends between samples.

Sans-I/O: fed, once per scan, the demand the link reports (`EngineLink.live_watched`), it says
whether this scan's live tag changes go out, wait, or go out as a full snapshot.

- Watched (or no link that tells: standalone, console, an aggregator older than 1.4): every
  scan's changes go out (`SEND`), as before 1.4.
- Not watched (the aggregator said so, or the link is down and so nobody can watch): nothing
  between samples (`HOLD`). The changed tags stay marked in the tag store and the next data-log
  sample carries the latest value of each: the sample is the coalesced live update, so an
  unwatched engine sends one frame per data-log interval and stores exactly what it stored
  before (samples never depend on the demand).
- Unwatched -> watched: one `SNAPSHOT` of every tag, so a new watcher sees fresh values at once
  rather than values up to a data-log interval old, then `SEND` again.
"""

from __future__ import annotations

from enum import Enum


class LivePlan(Enum):
    SEND = "send"
    HOLD = "hold"
    SNAPSHOT = "snapshot"


class LiveRate:
    """One engine's live-rate state across scans and connections."""

    def __init__(self) -> None:
        self.watched = True
        self.snapshots = 0
        """Snapshots planned so far (for tests and status)."""
        self.held_scans = 0
        """Scans whose live changes waited for the next sample."""

    def plan(self, demand: bool | None) -> LivePlan:
        """This scan's plan; `demand` is the link's `live_watched` (None: no link that tells)."""
        watched = True if demand is None else demand
        was, self.watched = self.watched, watched
        if not watched:
            self.held_scans += 1
            return LivePlan.HOLD
        if not was:
            self.snapshots += 1
            return LivePlan.SNAPSHOT
        return LivePlan.SEND
