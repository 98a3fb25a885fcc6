"""Periodic work on one shared grid of the event loop's clock.

An idle aggregator's cost is mostly its wake-ups: each return from epoll on this kind of machine
costs about as much CPU as the Python work done in it (bench/README.md, "Aggregator CPU"). The
link clock (every second), the security poll (twice a second) and the writer's idle maintenance
(every second) used to sleep their periods from whenever each last ran, so they woke the loop at
four scattered moments a second. Sleeping to the next multiple of the period instead puts timers
of commensurable periods on the same instants, where asyncio runs them in one pass of the loop:
two wake-ups a second. How often each job runs is unchanged.
"""

from __future__ import annotations

import asyncio
import math


def next_tick(now: float, period: float) -> float:
    """The first multiple of `period` strictly after `now`: the same float for every period
    that divides it exactly (0.25, 0.5, 1.0, 5.0), so their timers coincide."""
    tick = math.floor(now / period + 1.0) * period
    return tick if tick > now else tick + period


def tick_from(t: float, period: float) -> float:
    """The first multiple of `period` at or after `t` (a deadline put on the grid)."""
    return math.ceil(t / period) * period


async def sleep_to_tick(period: float) -> None:
    """Sleep until the loop's clock reaches the next multiple of `period`, at exactly that
    instant (`call_at`, not a delay from a later reading of the clock): timers due at the same
    instant run in the same pass of the loop."""
    loop = asyncio.get_running_loop()
    woken = loop.create_future()
    handle = loop.call_at(next_tick(loop.time(), period), wake, woken)
    try:
        await woken
    finally:
        handle.cancel()


def wake(future: asyncio.Future[None]) -> None:
    """A timer's callback that resolves `future` (unless it was cancelled meanwhile)."""
    if not future.done():
        future.set_result(None)
