"""The shared grid of periodic work (aggregator/ticks.py): timers of commensurable periods fall on
the same instants, so the link clock, the security poll and the writer's idle maintenance wake the
loop together instead of at four scattered moments a second."""

from __future__ import annotations

import asyncio

from aggregator.ticks import next_tick, sleep_to_tick


def test_the_next_tick_is_the_next_multiple_strictly_after_now() -> None:
    assert next_tick(12.3, 0.5) == 12.5
    assert next_tick(12.5, 0.5) == 13.0  # on a tick: the next one, never now
    assert next_tick(12.7, 1.0) == 13.0
    assert next_tick(0.0, 0.25) == 0.25


def test_commensurable_periods_share_their_instants_exactly() -> None:
    """The same float, so asyncio runs both timers in one pass of the loop."""
    for i in range(1, 2000):
        now = 1234.0 + i * 0.0123
        half, whole = next_tick(now, 0.5), next_tick(now, 1.0)
        assert whole in (half, half + 0.5)
        assert next_tick(now, 5.0) in {whole + k for k in range(5)}


async def test_a_sleeper_wakes_at_its_tick_of_the_loop_clock() -> None:
    loop = asyncio.get_running_loop()
    woke: list[tuple[float, float]] = []

    async def sleeper(period: float) -> None:
        due = next_tick(loop.time(), period)
        await sleep_to_tick(period)
        woke.append((due, loop.time()))

    await asyncio.gather(sleeper(0.05), sleeper(0.1))
    assert len(woke) == 2
    assert all(now >= due for due, now in woke), woke
