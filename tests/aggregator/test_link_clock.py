"""The one watchdog timer of every engine link (aggregator/link_clock.py): each link is looked at
once when it joins and then when it asks, by one task however many links are open; and at the
link level, the shared clock still closes a silent engine (rule 10) and times out an unanswered
resend (rule 7) while another engine's frames on the same clock are stored exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa

import protocol as p
from aggregator.app import create_app
from aggregator.context import Settings
from aggregator.link_clock import LinkClock, tick_for
from aggregator.security import new_token, token_hash
from aggregator.store.digests import stored_seqs
from aggregator.store.tables import T_SEQ
from tests.aggregator.helpers import Aggregator, RawEngine, tags, until


def test_the_tick_is_a_second_or_a_quarter_of_the_shortest_timeout() -> None:
    assert tick_for(5.0, 5.0) == 1.0
    assert tick_for(0.2, 1.0) == 0.05
    assert tick_for(5.0, 1.0) == 0.25


async def test_one_task_looks_at_every_link_and_stops_when_none_is_left() -> None:
    after: list[float] = []

    def hook(now: float) -> float | None:
        after.append(now)
        return None

    clock = LinkClock(0.01, after=hook)
    looks: dict[str, int] = {"a": 0, "b": 0}

    def look(name: str, now: float) -> float:
        looks[name] += 1
        return now + 0.01  # wants a look every tick

    clock.join("a", lambda now: look("a", now))
    assert looks["a"] == 1, "a link is looked at as it joins (its first Ping at once)"
    first = clock._task
    clock.join("b", lambda now: look("b", now))
    assert clock._task is first, "one task for every link"
    await until(lambda: looks["a"] >= 5 and looks["b"] >= 5, 5, "ticks")
    assert after, "the per-wake hook runs on the same wake"
    clock.leave("a")
    clock.leave("b")
    assert first is not None
    await asyncio.wait_for(first, 5)  # nothing joined: the clock ends by itself
    seen = dict(looks)
    clock.join("a", lambda now: look("a", now))
    assert clock._task is not first and looks["a"] == seen["a"] + 1
    await clock.stop()


async def test_the_clock_wakes_when_a_link_asks_not_every_tick() -> None:
    """A link that needs a look only in an hour is not looked at every tick; `soon` (a resend
    asked for, a held fall of interest) wakes the clock earlier, on the tick's grid."""
    clock = LinkClock(0.01)
    looks: list[float] = []

    def look(now: float) -> float:
        looks.append(now)
        return now + 3600.0

    clock.join("idle", look)
    assert len(looks) == 1
    wakes = clock.ticks
    asked = time.monotonic() + 0.05
    clock.soon(asked)
    await until(lambda: len(looks) == 2, 5, "the look asked for")
    assert looks[1] >= asked - 0.01  # not before the tick it fell on
    assert clock.ticks == wakes + 1, "one wake, not one per tick"
    await clock.stop()


async def test_a_failing_check_does_not_starve_the_other_links() -> None:
    clock = LinkClock(0.01)
    looks: list[float] = []

    def broken(now: float) -> float:
        raise RuntimeError("a bug in one link")

    def fine(now: float) -> float:
        looks.append(now)
        return now + 0.01

    clock.join("broken", broken)
    clock.join("fine", fine)
    await until(lambda: len(looks) >= 3, 5, "the healthy link's ticks")
    await clock.stop()


def stored_seq(agg: Aggregator, engine_id: str) -> int:
    with agg.ctx.storage.engine.connect() as conn:
        value = conn.execute(
            sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == engine_id)
        ).scalar()
    return int(value or 0)


async def test_the_shared_clock_closes_a_silent_link_and_keeps_the_other_exactly_once(
    db_url: str,
) -> None:
    settings = Settings(heartbeat_interval=0.5, resend_timeout=1.0, batch_window=0.005)
    agg = Aggregator(create_app(db_url, settings))
    await agg.start()
    tokens = {}
    for name in ("silent", "busy"):
        tokens[name] = new_token()
        agg.ctx.storage.create_engine_token(
            f"{name}-{uuid.uuid4().hex[:6]}", token_hash(tokens[name])
        )
    silent, busy = RawEngine(agg), RawEngine(agg)
    try:
        for name, engine in (("silent", silent), ("busy", busy)):
            await engine.connect(tokens[name])
            await engine.register()
        assert len(agg.ctx.link_clock) == 2
        # busy answers pings and sends frames, one of them out of order (a gap it never fills)
        answered: set[str] = set()
        seq = 0
        started = time.monotonic()
        while not silent.closed.is_set() and time.monotonic() - started < 10:
            for ping in busy.of_type(p.Ping):
                if ping.id not in answered:
                    answered.add(ping.id)
                    await busy.send(p.CommandResult(id=ping.id, ok=True))
            seq += 1 if seq != 3 else 2  # seq 4 is never sent
            await busy.send(tags(seq, 1000.0 + seq, None, sample=False, FT01=float(seq)))
            await asyncio.sleep(0.05)
        assert silent.closed.is_set(), "the silent link is closed by the shared clock (rule 10)"
        assert not busy.closed.is_set(), "the answering link stays"
        await busy.wait_ack(seq, timeout=10)  # the unanswered resend of 4 timed out (rule 7)
        assert stored_seq(agg, busy.engine_id) == seq
        sent = [n for n in range(1, seq + 1) if n != 4]
        with agg.ctx.storage.engine.connect() as conn:
            kept = stored_seqs(conn, busy.engine_id)
        assert len(kept) == len(set(kept)), "nothing stored twice"
        assert set(sent) <= set(kept), "every frame sent is stored"
        assert len(agg.ctx.link_clock) == 1
    finally:
        await silent.aclose()
        await busy.aclose()
        await agg.stop()
