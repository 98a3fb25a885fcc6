"""The security poll's check skips the database only while SQLite reports no commit since its
last answer (aggregator/security_gate.py): any commit, by any connection, sends it back to the
database; so does a new item to check; a kept session still ends when its stored time is up."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from aggregator.security import token_hash
from aggregator.security_gate import DataVersion, GatedCheck
from aggregator.security_poll import check_with_expiry
from aggregator.store import Storage


class _Database:
    """A fake query with a version that moves when told, counting the trips."""

    def __init__(self) -> None:
        self.version = 1
        self.trips = 0
        self.valid = {"a", "b"}
        self.alive = {"s1": ("viewer", 100.0), "s2": ("admin", 50.0)}

    async def query(
        self, now: float, tokens: set[str], sessions: set[str]
    ) -> tuple[set[str], dict[str, tuple[str, float]]]:
        self.trips += 1
        alive = {d: v for d, v in self.alive.items() if d in sessions and v[1] > now}
        return self.valid & tokens, alive


async def test_the_last_answer_stands_only_while_nothing_changed() -> None:
    db = _Database()
    now = [10.0]
    check = GatedCheck(db.query, lambda: db.version, lambda: now[0])
    assert await check({"a", "b"}, {"s1", "s2"}) == ({"a", "b"}, {"s1": "viewer", "s2": "admin"})
    assert await check({"a"}, {"s1", "s2"}) == ({"a"}, {"s1": "viewer", "s2": "admin"})
    assert db.trips == 1 and check.skipped == 1, "same version, items already asked: kept"
    db.valid = {"b"}  # "a" revoked by another process: a commit moves the version
    db.version += 1
    assert await check({"a", "b"}, {"s1"}) == ({"b"}, {"s1": "viewer"})
    assert db.trips == 2
    assert await check({"a", "b", "c"}, {"s1"}) == ({"b"}, {"s1": "viewer"})
    assert db.trips == 3, "an item not asked before goes to the database"
    assert await check({"b"}, {"s1", "s2"}) == ({"b"}, {"s1": "viewer", "s2": "admin"})
    assert db.trips == 4, "a session not asked before goes to the database"
    now[0] = 60.0  # s2's stored expiry passed; nothing committed
    assert await check({"b"}, {"s1", "s2"}) == ({"b"}, {"s1": "viewer"})
    assert db.trips == 4 and check.skipped == 2


async def test_without_a_version_every_poll_asks_the_database() -> None:
    db = _Database()
    check = GatedCheck(db.query, None, lambda: 0.0)
    for _ in range(3):
        assert await check({"a"}, set()) == ({"a"}, {})
    unreadable = GatedCheck(db.query, lambda: None, lambda: 0.0)
    for _ in range(3):
        await unreadable({"a"}, set())
    assert db.trips == 6 and check.skipped == unreadable.skipped == 0


def test_only_a_sqlite_file_has_a_version(tmp_path: Path) -> None:
    assert DataVersion.for_engine(sa.create_engine("sqlite://")) is None
    assert DataVersion.for_engine(sa.create_engine(f"sqlite:///{tmp_path}/x.db")) is not None


async def test_a_revocation_committed_elsewhere_is_seen_at_the_next_poll(
    storage: Storage,
) -> None:
    version = DataVersion.for_engine(storage.engine)
    if version is None:  # PostgreSQL: no gate, every poll asks (covered above)
        return
    trips: list[int] = []

    async def query(
        now: float, tokens: set[str], sessions: set[str]
    ) -> tuple[set[str], dict[str, tuple[str, float]]]:
        trips.append(1)
        return check_with_expiry(storage.engine, now, tokens, sessions)

    try:
        for inline in (None, version.check):  # via a reader thread, then on the loop
            tag = uuid.uuid4().hex[:6]
            names = {f"one-{tag}", f"two-{tag}"}
            for name in names:
                storage.create_engine_token(name, token_hash(name))
            check = GatedCheck(query, version, lambda: 0.0, inline=inline)
            trips.clear()
            assert (await check(names, set()))[0] == names
            assert (await check(names, set()))[0] == names
            assert check.skipped == 1, "no commit in between: the database is not asked again"
            storage.revoke_engine_token(f"one-{tag}")  # another connection commits
            assert (await check(names, set()))[0] == {f"two-{tag}"}
            assert check.skipped == 1
            assert len(trips) == (2 if inline is None else 0)
    finally:
        version.close()


def test_the_inline_check_answers_as_the_reader_query(storage: Storage) -> None:
    version = DataVersion.for_engine(storage.engine)
    if version is None:  # PostgreSQL: always the reader thread
        return
    tag = uuid.uuid4().hex[:6]
    names = {f"ok-{tag}", f"revoked-{tag}", f"unknown-{tag}"}
    storage.create_engine_token(f"ok-{tag}", token_hash(f"ok-{tag}"))
    storage.create_engine_token(f"revoked-{tag}", token_hash(f"revoked-{tag}"))
    storage.revoke_engine_token(f"revoked-{tag}")
    storage.add_user(f"op-{tag}", "operator", "x")
    user = storage.user_by_name(f"op-{tag}")
    assert user is not None
    digests = {token_hash(f"{kind}-{tag}") for kind in ("live", "none")}
    storage.create_session(user.id, token_hash(f"live-{tag}"), 3600.0)
    try:
        for now in (time.time(), time.time() + 7200.0):  # live, then expired
            inline = version.check(now, names, digests)
            assert inline == check_with_expiry(storage.engine, now, names, digests)
        assert inline is not None and inline[0] == {f"ok-{tag}"}
    finally:
        version.close()
