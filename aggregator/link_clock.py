"""One timer for the watchdogs of every engine link.

Each engine link needs a look about once a second: is a Ping due, has the engine been silent for
3 intervals (rule 10), has a ResendRequest gone unanswered for too long (rule 7)? With a task and
a timer per link, 100 engines woke the event loop 100 times a second at scattered moments, each
wake an epoll return, a timer handle and a task step: the largest per-engine item of an idle
aggregator (bench/README.md, "Aggregator CPU"). This clock looks at every link in one wake. What
each link checks, and how often, is unchanged: the tick is the links' own (`tick_for`), and a
link is looked at once when it joins, so its first Ping goes out at registration as before.

Its ticks are on the loop's shared grid (ticks.py), so they coincide with the security poll's
and the writer's. The clock runs only while a link is joined; the demand router's held falls (live_demand.py) are
checked on the same tick instead of once per link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aggregator.ticks import sleep_to_tick

log = logging.getLogger(__name__)

Check = Callable[[float], None]
"""A link's look at the time `now` (time.monotonic())."""


def tick_for(heartbeat_interval: float, resend_timeout: float) -> float:
    """How often a link must be looked at: a second, or a quarter of its shortest timeout."""
    return min(1.0, heartbeat_interval / 4, resend_timeout / 4)


class LinkClock:
    def __init__(
        self,
        tick: float,
        after: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tick = tick
        self._after = after
        self._clock = clock
        self._links: dict[object, Check] = {}
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        """Wakes so far (tests, benchmarks)."""

    def __len__(self) -> int:
        return len(self._links)

    def join(self, key: object, check: Check) -> None:
        """Look at this link now and then every tick until it leaves."""
        self._links[key] = check
        self._look(check, self._clock())
        if key in self._links and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="setpoint-link-clock"
            )

    def leave(self, key: object) -> None:
        self._links.pop(key, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while self._links:
            await sleep_to_tick(self.tick)
            self.ticks += 1
            now = self._clock()
            for check in list(self._links.values()):
                self._look(check, now)
            if self._after is not None:
                try:
                    self._after()
                except Exception:
                    log.exception("link clock: the per-tick hook failed")

    @staticmethod
    def _look(check: Check, now: float) -> None:
        """One link's failing check must not starve the others of theirs."""
        try:
            check(now)
        except Exception:
            log.exception("link clock: a link's check failed")
