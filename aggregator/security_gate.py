"""The security poll's database trip, skipped while the database has not changed (SQLite).

The poll (security_poll.py) asks, when told of a change and on its safety-net period, whether
the open links' engine tokens and the open /ws sockets' sessions are still valid, because
another process (the CLI) may revoke or end them. On an aggregator with one engine that trip (a
reader-thread hop and a query) was the largest single cost of the idle process
(bench/README.md, "Aggregator CPU"). SQLite says, for free, whether anything was committed since
we last looked: `PRAGMA data_version` on a connection of our own changes whenever any other
connection, of this process or another, commits. While it
stands still, the last answer is still the database's answer for the same items, except for
sessions whose time ran out, which are dropped by their stored expiry. Anything else (new items
to check, any commit at all, PostgreSQL) goes to the database as before, so a revocation or
logout is still seen within the poll's interval. On SQLite that question is asked on the same
connection, on the event loop (two indexed point reads, never waiting for a lock), instead of on a
reader thread: the hop there and back cost more than the queries.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa

from aggregator.security_poll import Answer

log = logging.getLogger(__name__)

Query = Callable[
    [float, set[str], set[str]], Awaitable[tuple[set[str], dict[str, tuple[str, float]]]]
]
"""(now, token names, session digests) -> (valid names, {digest: (role, expires)})"""


Inline = Callable[[float, set[str], set[str]], tuple[set[str], dict[str, tuple[str, float]]] | None]
"""The same question answered on the calling thread, or None (DataVersion.check)."""


def _no_inline(
    now: float, tokens: set[str], sessions: set[str]
) -> tuple[set[str], dict[str, tuple[str, float]]] | None:
    return None


class DataVersion:
    """`PRAGMA data_version` of a SQLite file on a connection used for nothing else."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def for_engine(cls, engine: sa.Engine) -> DataVersion | None:
        """None unless the database is a SQLite file (in memory, nothing else can change it,
        but nothing else can share this connection's view of it either)."""
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        if database.startswith("file:"):
            return None
        return cls(database)

    def __call__(self) -> int | None:
        """The version now; None when it cannot be read (then the database is asked)."""
        try:
            if self._conn is None:
                # never wait for a lock on the event loop: busy means "ask the database"
                self._conn = sqlite3.connect(self._path, timeout=0, isolation_level=None)
            row = self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error as exc:
            log.debug("reading the SQLite data version failed: %s", exc)
            self.close()
            return None
        return int(row[0]) if row else None

    def check(
        self, now: float, tokens: set[str], sessions: set[str]
    ) -> tuple[set[str], dict[str, tuple[str, float]]] | None:
        """`check_with_expiry` on this connection, on the calling (event-loop) thread: two
        indexed point queries on small tables cost less than the hop to a reader thread and
        back. None when the database is busy or unreadable (then a reader thread asks)."""
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self._path, timeout=0, isolation_level=None)
            valid: set[str] = set()
            alive: dict[str, tuple[str, float]] = {}
            if tokens:
                names = list(tokens)
                rows = self._conn.execute(
                    f"SELECT name FROM engine_token WHERE name IN ({', '.join('?' * len(names))})"
                    " AND NOT revoked",
                    names,
                )
                valid = {str(name) for (name,) in rows}
            if sessions:
                digests = list(sessions)
                rows = self._conn.execute(
                    "SELECT s.token_hash, u.role, s.expires FROM session_token s "
                    "JOIN user_account u ON u.id = s.user_id "
                    f"WHERE s.token_hash IN ({', '.join('?' * len(digests))}) AND s.expires > ?",
                    (*digests, now),
                )
                alive = {str(d): (str(role), float(expires)) for d, role, expires in rows}
        except sqlite3.Error as exc:
            log.debug("checking tokens and sessions on the loop failed: %s", exc)
            self.close()
            return None
        return valid, alive

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class _Kept:
    version: int
    tokens: frozenset[str]
    sessions: frozenset[str]
    valid: frozenset[str]
    alive: dict[str, tuple[str, float]]


class GatedCheck:
    """SecurityPoll's check: the database's answer, or the last one while nothing changed."""

    def __init__(
        self,
        query: Query,
        version: Callable[[], int | None] | None,
        clock: Callable[[], float],
        inline: Inline | None = None,
    ) -> None:
        self._query = query
        self._version = version
        self._inline: Inline = inline if inline is not None else _no_inline
        self._clock = clock
        self._kept: _Kept | None = None
        self._expiries: list[float] = []
        self.skipped = 0
        """Polls answered without the database (tests, benchmarks)."""

    async def __call__(self, tokens: set[str], sessions: set[str]) -> Answer:
        now = self._clock()
        version = self._version() if self._version is not None else None
        kept = self._kept
        if (
            version is not None
            and kept is not None
            and kept.version == version
            and tokens <= kept.tokens
            and sessions <= kept.sessions
        ):
            self.skipped += 1
            return set(kept.valid & tokens), _roles(kept.alive, sessions, now)
        # the version is read before the query: a commit in between is seen next time
        answer = self._inline(now, tokens, sessions) if version is not None else None
        if answer is None:
            answer = await self._query(now, tokens, sessions)
        valid, alive = answer
        self._expiries = sorted(expires for _, expires in alive.values())
        self._kept = (
            None
            if version is None
            else _Kept(version, frozenset(tokens), frozenset(sessions), frozenset(valid), alive)
        )
        return valid, _roles(alive, sessions, now)

    def until_expiry(self) -> float | None:
        """Seconds until the next of the last answer's sessions expires (a little after, so
        that its check finds it expired); None: none will."""
        now = self._clock()
        for expires in self._expiries:
            if expires > now:
                return expires - now + 0.01
        return None


def _roles(alive: dict[str, tuple[str, float]], asked: set[str], now: float) -> dict[str, str]:
    return {
        digest: role
        for digest, (role, expires) in alive.items()
        if digest in asked and expires > now
    }
