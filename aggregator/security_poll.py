"""One check of what must follow the database's security state at once, also when the change is
made by another process (the CLI against the same database, another node): the engine tokens of
open engine links (engine_tokens.py: a revoked token ends its link, rule 1) and the login sessions
of open /ws sockets (ws/session_watch.py: logout, expiry, a new password, a removed user or a
changed role end the socket).

Why one: the two checks were two loops, each waking twice a second for a trip to a reader
thread and a SQLAlchemy query whose expanding IN is compiled anew on every call (~0.35 ms of
CPU each): together more than one engine's data cost the aggregator. Now one loop, one trip,
and plain SQL text on one connection; a check costs ~0.1 ms and runs only while a link or a
socket is open.

When: at once when poked (security_notice.py: whoever commits such a change tells the serving
processes), when a watched session's time is up, and otherwise on a slow safety-net period for
changes nobody told (a hand-made SQL edit). While nobody can tell this process (no listener:
another platform, a second server on one SQLite file, PostgreSQL unreachable) it polls at the old
rate, twice a second, which keeps "within a second". The poll at that rate was two loop wake-ups
a second, most of an idle one-engine aggregator's CPU (bench/README.md, "Aggregator CPU").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import sqlalchemy as sa

from aggregator.ticks import next_tick

log = logging.getLogger(__name__)

Answer = tuple[set[str], dict[str, str]]
"""(the valid ones of the token names asked, {session digest: its user's role} of the valid
sessions asked)"""
Check = Callable[[set[str], set[str]], Awaitable[Answer]]
Request = tuple[set[str], Callable[[Any], None]]
"""What a source wants checked now, and what to tell with the answer (for those same items:
a link or socket opened while the query ran is not judged by an answer that did not ask)."""
Source = Callable[[], Request | None]


def check_in_database(
    engine: sa.Engine, now: float, tokens: Collection[str], sessions: Collection[str]
) -> Answer:
    """The same answers as Accounts.valid_engine_tokens and Accounts.live_sessions
    (tests/aggregator/test_security_poll.py holds them to it), in one connection, as SQL text:
    only the number of placeholders varies, so nothing is compiled per call."""
    valid, alive = check_with_expiry(engine, now, tokens, sessions)
    return valid, {digest: role for digest, (role, _) in alive.items()}


def check_with_expiry(
    engine: sa.Engine, now: float, tokens: Collection[str], sessions: Collection[str]
) -> tuple[set[str], dict[str, tuple[str, float]]]:
    """`check_in_database` with each live session's expiry, so that an answer kept while the
    database does not change (security_gate.py) still ends a session when its time is up."""
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    valid: set[str] = set()
    alive: dict[str, tuple[str, float]] = {}
    with engine.connect() as conn:
        if tokens:
            names = list(tokens)
            rows = conn.exec_driver_sql(
                f"SELECT name FROM engine_token WHERE name IN ({', '.join([mark] * len(names))})"
                " AND NOT revoked",
                tuple(names),
            )
            valid = {str(name) for (name,) in rows}
        if sessions:
            digests = list(sessions)
            rows = conn.exec_driver_sql(
                "SELECT s.token_hash, u.role, s.expires FROM session_token s "
                "JOIN user_account u ON u.id = s.user_id "
                f"WHERE s.token_hash IN ({', '.join([mark] * len(digests))}) AND s.expires > {mark}",
                (*digests, now),
            )
            alive = {str(digest): (str(role), float(expires)) for digest, role, expires in rows}
    return valid, alive


MIN_GAP = 0.05
"""Seconds between two checks at least: a flood of pokes costs at most 20 checks a second."""


def _nothing() -> Request | None:
    return None


def _no_expiry() -> float | None:
    return None


def _not_listening() -> bool:
    return False


class SecurityPoll:
    def __init__(self, check: Check, interval: float = 0.5, safety_interval: float = 5.0) -> None:
        self.interval = interval
        """The period while nobody can tell this process of a change."""
        self.safety_interval = safety_interval
        """The period while security notices reach it (`listening`)."""
        self.listening: Callable[[], bool] = _not_listening
        self.until_expiry: Callable[[], float | None] = _no_expiry
        """Seconds until the next watched session expires (security_gate.GatedCheck)."""
        self._check = check
        self._poked = asyncio.Event()
        self._last = -MIN_GAP
        self.tokens: Source = _nothing
        """Engine token names of the open links (engine_tokens.TokenWatch)."""
        self.sessions: Source = _nothing
        """Session digests of the open /ws sockets (ws/session_watch.SessionWatch)."""
        self._task: asyncio.Task[None] | None = None
        self.checks = 0
        """Trips to the database so far (tests, benchmarks)."""

    def wake(self) -> None:
        """Something opened that must be watched: make sure the loop runs, and check soon (the
        answer tells when its session expires)."""
        self._poked.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="setpoint-security-poll"
            )

    def poke(self) -> None:
        """Something changed (security_notice.py): check now, if anything is open."""
        self._poked.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._sleep()
            tokens, sessions = self.tokens(), self.sessions()
            if tokens is None and sessions is None:
                return  # nothing open: woken again by the next link or socket
            names = tokens[0] if tokens is not None else set()
            digests = sessions[0] if sessions is not None else set()
            if not names and not digests:
                continue
            try:
                self.checks += 1
                valid, alive = await self._check(names, digests)
            except Exception:
                log.exception("checking the tokens and sessions of open connections failed")
                continue
            if tokens is not None:
                tokens[1](valid)
            if sessions is not None:
                sessions[1](alive)

    def next_check(self, now: float) -> float:
        """When the next check is due unless poked: the next tick of the period (the slow one
        while notices reach this process), or a watched session's expiry if sooner."""
        deadline = next_tick(now, self.safety_interval if self.listening() else self.interval)
        expiry = self.until_expiry()
        return deadline if expiry is None else min(deadline, now + max(expiry, 0.0))

    async def _sleep(self) -> None:
        """Until poked, a session's expiry or the next tick of the period, and at least MIN_GAP
        after the last check."""
        loop = asyncio.get_running_loop()
        deadline = self.next_check(loop.time())
        if not self._poked.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._poked.wait()
        self._poked.clear()
        gap = self._last + MIN_GAP - loop.time()
        if gap > 0:
            await asyncio.sleep(gap)
        self._last = loop.time()
