"""One poll for the engine links' tokens and the /ws sockets' sessions (aggregator/security_poll.py):
its SQL text answers exactly as Accounts.valid_engine_tokens and Accounts.live_sessions do, one
check serves both kinds, an answer is applied only to what it asked about, and the loop runs only
while something is open."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from pathlib import Path
from typing import Any

from aggregator.security import token_hash
from aggregator.security_poll import MIN_GAP, Answer, SecurityPoll, check_in_database
from aggregator.store import Storage
from aggregator.store.tables import T_SESSION, T_USER
from tests.aggregator.helpers import until


def test_the_sql_text_answers_as_the_accounts_queries(storage: Storage) -> None:
    tag = uuid.uuid4().hex[:6]
    names = [f"ok-{tag}", f"revoked-{tag}", f"unknown-{tag}"]
    storage.create_engine_token(names[0], token_hash(names[0]))
    storage.create_engine_token(names[1], token_hash(names[1]))
    storage.revoke_engine_token(names[1])

    storage.add_user(f"op-{tag}", "operator", "x")
    storage.add_user(f"gone-{tag}", "viewer", "x")
    op = storage.user_by_name(f"op-{tag}")
    gone = storage.user_by_name(f"gone-{tag}")
    assert op is not None and gone is not None
    digests = [token_hash(f"{kind}-{tag}") for kind in ("live", "expired", "orphan", "none")]
    storage.create_session(op.id, digests[0], 3600.0)
    storage.create_session(op.id, digests[1], 3600.0)
    storage.create_session(gone.id, digests[2], 3600.0)
    with storage.engine.begin() as conn:
        conn.execute(
            T_SESSION.update().where(T_SESSION.c.token_hash == digests[1]).values(expires=1.0)
        )
        conn.execute(T_USER.delete().where(T_USER.c.id == gone.id))
        conn.execute(T_USER.update().where(T_USER.c.id == op.id).values(role="admin"))

    now = time.time()
    valid, alive = check_in_database(storage.engine, now, set(names), set(digests))
    assert valid == storage.valid_engine_tokens(names) == {names[0]}
    assert alive == storage.live_sessions(digests) == {digests[0]: "admin"}
    assert check_in_database(storage.engine, now, set(), set()) == (set(), {})


class _Source:
    """Items to check (a set of keys); records the answers it is given, per request."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.answers: list[tuple[set[str], Any]] = []

    def __call__(self) -> tuple[set[str], Any] | None:
        if not self.keys:
            return None
        asked = set(self.keys)
        return asked, lambda answer: self.answers.append((asked, answer))


async def test_one_check_serves_links_and_sockets_and_stops_when_nothing_is_open() -> None:
    calls: list[tuple[set[str], set[str]]] = []
    gate = asyncio.Event()
    gate.set()

    async def check(tokens: set[str], sessions: set[str]) -> Answer:
        calls.append((set(tokens), set(sessions)))
        await gate.wait()
        return {t for t in tokens if t != "revoked"}, {s: "viewer" for s in sessions}

    poll = SecurityPoll(check, interval=0.01)
    tokens, sessions = _Source(), _Source()
    poll.tokens, poll.sessions = tokens, sessions
    try:
        tokens.keys = {"a", "revoked"}
        sessions.keys = {"s1"}
        poll.wake()
        await until(lambda: len(calls) >= 2, 5, "two checks")
        # each check asks about both kinds at once: one trip for links and sockets
        assert calls[0] == ({"a", "revoked"}, {"s1"})
        assert tokens.answers[0] == ({"a", "revoked"}, {"a"})
        assert sessions.answers[0] == ({"s1"}, {"s1": "viewer"})

        # a socket opened while a check runs is not judged by that check's answer
        gate.clear()
        await until(lambda: len(calls) >= 3, 5, "a check in flight")
        sessions.keys = {"s1", "s2"}
        answered = len(sessions.answers)
        gate.set()
        await until(lambda: len(sessions.answers) > answered, 5, "the answer")
        assert sessions.answers[answered][0] == {"s1"}

        # nothing open: the loop ends; opening something wakes it again
        tokens.keys, sessions.keys = set(), set()
        assert poll._task is not None
        await asyncio.wait_for(poll._task, 5)
        stopped_at = len(calls)
        await asyncio.sleep(0.05)
        assert len(calls) == stopped_at
        tokens.keys = {"b"}
        poll.wake()
        await until(lambda: len(calls) > stopped_at, 5, "a check after waking")
        assert calls[-1] == ({"b"}, set())
    finally:
        await poll.stop()


async def test_a_failing_check_is_retried() -> None:
    failures = [RuntimeError("database away")]
    calls = 0

    async def check(tokens: set[str], sessions: set[str]) -> Answer:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop()
        return set(), {}

    poll = SecurityPoll(check, interval=0.01)
    tokens = _Source()
    poll.tokens = tokens
    tokens.keys = {"a"}
    poll.wake()
    try:
        await until(lambda: tokens.answers, 5, "an answer after the failure")
        assert calls == 2 and tokens.answers[0] == ({"a"}, set())
    finally:
        await poll.stop()


def test_the_poll_is_used_by_both_watches_of_an_app(tmp_path: Path) -> None:
    from aggregator.app import create_app
    from aggregator.context import CONTEXT_KEY, Settings
    from aggregator.ws.handler import WS_BACKEND_KEY

    app = create_app(f"sqlite:///{tmp_path}/s.sqlite3", Settings(static_dir="/nonexistent"))
    ctx = app[CONTEXT_KEY]
    try:
        assert ctx.token_watch.poll is ctx.security
        assert app[WS_BACKEND_KEY].sessions.poll is ctx.security
    finally:
        ctx.storage.engine.dispose()


def test_the_period_is_the_slow_one_while_notices_arrive_and_an_expiry_comes_first() -> None:
    async def check(tokens: set[str], sessions: set[str]) -> Answer:
        return set(), {}

    poll = SecurityPoll(check, interval=0.5, safety_interval=5.0)
    assert poll.next_check(100.2) == 100.5  # nobody can tell us: the old rate
    poll.listening = lambda: True
    assert poll.next_check(100.2) == 105.0  # told of every change: only the safety net
    poll.until_expiry = lambda: 1.25
    assert poll.next_check(100.2) == 101.45  # a watched session ends before that
    poll.until_expiry = lambda: -3.0
    assert poll.next_check(100.2) == 100.2


async def test_a_poke_checks_at_once_and_pokes_are_rate_limited() -> None:
    calls: list[float] = []

    async def check(tokens: set[str], sessions: set[str]) -> Answer:
        calls.append(asyncio.get_running_loop().time())
        return set(tokens), {}

    poll = SecurityPoll(check, interval=3600.0, safety_interval=3600.0)
    tokens = _Source()
    poll.tokens = tokens
    tokens.keys = {"a"}
    try:
        poll.wake()  # something opened: its first check comes at once
        await until(lambda: len(calls) == 1, 5, "the first check")
        for _ in range(50):
            poll.poke()
        await until(lambda: len(calls) == 2, 5, "a check after the pokes")
        poll.poke()
        await until(lambda: len(calls) == 3, 5, "a check after the next poke")
        gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
        assert all(gap >= MIN_GAP * 0.99 for gap in gaps)
        assert len(calls) == 3  # fifty pokes in a row: one check
    finally:
        await poll.stop()


async def test_a_watched_sessions_expiry_wakes_the_poll() -> None:
    calls = 0

    async def check(tokens: set[str], sessions: set[str]) -> Answer:
        nonlocal calls
        calls += 1
        return set(), {}

    poll = SecurityPoll(check, interval=3600.0, safety_interval=3600.0)
    sessions = _Source()
    poll.sessions = sessions
    sessions.keys = {"s"}
    poll.until_expiry = lambda: 0.1
    try:
        poll.wake()
        await until(lambda: calls >= 2, 5, "a check at the expiry, an hour before the period")
    finally:
        await poll.stop()
