"""One timer for the watchdogs of every engine link.

Each engine link needs a look now and then: is a Ping due, has the engine been silent for 3
intervals (rule 10), has a ResendRequest gone unanswered for too long (rule 7)? With a task and
a timer per link, 100 engines woke the event loop 100 times a second at scattered moments, each
wake an epoll return, a timer handle and a task step: the largest per-engine item of an idle
aggregator (bench/README.md, "Aggregator CPU"). This clock looks at every link in one wake.

It wakes when the earliest link needs it, not every second: each look returns when that link
next needs one (its Ping, its silence limit, its resend timeout), and a link that starts
something sooner says so (`soon`). While Acks flow no Ping is due, so a busy link is looked at
about once a heartbeat interval; a wake once a second was a quarter of a one-engine aggregator's
CPU (bench/README.md, "Aggregator CPU"). Wakes are put on the grid of `tick` (ticks.py), so they
coincide with the other periodic jobs', and never come later than a link asked by more than a
tick. A link is looked at once when it joins, so its first Ping goes out at registration. The
demand router's held falls (live_demand.py) are the `after` hook, looked at on the same wakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from aggregator.ticks import next_tick, tick_from, wake

log = logging.getLogger(__name__)

Check = Callable[[float], float]
"""A link's look at the time `now` (time.monotonic()); returns when it next needs one."""
Hook = Callable[[float], float | None]
"""The same for the per-wake hook; None: it needs no wake of its own."""


def tick_for(heartbeat_interval: float, resend_timeout: float) -> float:
    """How often a link must be looked at: a second, or a quarter of its shortest timeout."""
    return min(1.0, heartbeat_interval / 4, resend_timeout / 4)


class LinkClock:
    def __init__(
        self,
        tick: float,
        after: Hook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tick = tick
        self._after = after
        self._clock = clock
        self._links: dict[object, Check] = {}
        self._due = math.inf
        """When the earliest link or the hook needs a look (the clock's time)."""
        self._task: asyncio.Task[None] | None = None
        self._woken: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.ticks = 0
        """Wakes so far (tests, benchmarks)."""

    def __len__(self) -> int:
        return len(self._links)

    def join(self, key: object, check: Check) -> None:
        """Look at this link now, and then whenever it asks until it leaves."""
        self._links[key] = check
        self.soon(self._look(check, self._clock()))
        if key in self._links and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="setpoint-link-clock"
            )

    def leave(self, key: object) -> None:
        self._links.pop(key, None)

    def soon(self, when: float) -> None:
        """Something needs a look at `when` (the clock's time): wake no later than that."""
        if when >= self._due:
            return
        self._due = when
        if self._woken is not None and not self._woken.done():
            self._arm(self._woken)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._links:
            self._woken = loop.create_future()
            self._arm(self._woken)
            try:
                await self._woken
            finally:
                if self._timer is not None:
                    self._timer.cancel()
                self._woken = None
            self.ticks += 1
            now = self._clock()
            due = math.inf
            for check in list(self._links.values()):
                due = min(due, self._look(check, now))
            if self._after is not None:
                try:
                    hook_due = self._after(now)
                except Exception:
                    log.exception("link clock: the per-wake hook failed")
                    hook_due = None
                if hook_due is not None:
                    due = min(due, hook_due)
            self._due = due
        self._due = math.inf

    def _arm(self, woken: asyncio.Future[None]) -> None:
        """(Re)set the timer to the first tick of the grid at or after `_due`, in the loop's
        time (the clock's time is the loop's in production; tests may pass their own)."""
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        now = loop.time()
        delay = self._due - self._clock() if self._due != math.inf else self.tick
        at = tick_from(now + max(delay, 0.0), self.tick)
        if at <= now:
            at = next_tick(now, self.tick)
        self._timer = loop.call_at(at, wake, woken)

    def _look(self, check: Check, now: float) -> float:
        """One link's failing check must not starve the others of theirs: it is looked at
        again on the next tick."""
        try:
            return check(now)
        except Exception:
            log.exception("link clock: a link's check failed")
            return now + self.tick
