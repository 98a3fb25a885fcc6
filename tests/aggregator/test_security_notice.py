"""Security changes told to the serving processes (aggregator/security_notice.py): over the real
abstract socket of a SQLite file (also from another process) and over PostgreSQL's LISTEN/NOTIFY,
with a second server on one SQLite file falling back to polling, and telling nobody harmless."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator.db import create_db_engine
from aggregator.security_notice import Listener, socket_address, tell
from aggregator.store import Storage
from tests.aggregator.helpers import until


class _Pokes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def test_a_tell_from_another_process_pokes_the_listener(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'site.sqlite3'}")
    pokes = _Pokes()
    listener = Listener(engine, pokes)
    await listener.start()
    try:
        assert listener.listening
        tell(engine)
        await until(lambda: pokes.count == 1, 5, "the poke of this process's tell")
        code = (
            "import sqlalchemy as sa; from aggregator.security_notice import tell; "
            f"tell(sa.create_engine('sqlite:///{tmp_path / 'site.sqlite3'}'))"
        )
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", code], capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        await until(lambda: pokes.count == 2, 5, "the poke of another process's tell")
    finally:
        await listener.stop()
        engine.dispose()
    assert not listener.listening


async def test_a_second_server_of_one_file_polls_and_the_first_still_hears(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    first_engine, second_engine = create_db_engine(url), create_db_engine(url)
    first, second = _Pokes(), _Pokes()
    listeners = [Listener(first_engine, first), Listener(second_engine, second)]
    for listener in listeners:
        await listener.start()
    try:
        assert listeners[0].listening and not listeners[1].listening
        tell(second_engine)
        await until(lambda: first.count == 1, 5, "the first server's poke")
        assert second.count == 0
    finally:
        for listener in listeners:
            await listener.stop()
        first_engine.dispose()
        second_engine.dispose()


def test_telling_nobody_is_harmless(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path / 'nobody.sqlite3'}", "sqlite://"):
        engine = sa.create_engine(url)
        tell(engine)  # no serving process, or nothing to tell: no error
        engine.dispose()
    assert socket_address(sa.create_engine("sqlite://")) is None
    a = socket_address(sa.create_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}"))
    b = socket_address(sa.create_engine(f"sqlite:///{tmp_path / '.' / 'a.sqlite3'}"))
    assert a is not None and a == b and a.startswith("\0")  # one name per file, however spelt


@pytest.mark.postgres
async def test_postgresql_notifies_every_listener(pg_database: str) -> None:
    listening_engine, telling_engine = create_db_engine(pg_database), create_db_engine(pg_database)
    pokes = _Pokes()
    listener = Listener(listening_engine, pokes)
    await listener.start()
    try:
        await until(lambda: listener.listening, 10, "the LISTEN connection")
        told = pokes.count
        await asyncio.to_thread(tell, telling_engine)
        await until(lambda: pokes.count > told, 5, "the NOTIFY")
    finally:
        await listener.stop()
        listening_engine.dispose()
        telling_engine.dispose()
    assert not listener.listening


async def test_every_account_change_that_ends_a_grant_is_told(storage: Storage) -> None:
    """Logout, a new role, a new password and a deleted user each end sessions in Accounts and
    tell the serving processes; a change that ends nothing keeps the sessions."""
    pokes = _Pokes()
    listener = Listener(storage.engine, pokes)
    await listener.start()
    try:
        await until(lambda: listener.listening, 10, "the listener")
        storage.add_user("alice", "operator", "hash-1")
        user = storage.user_by_name("alice")
        assert user is not None
        for digest in ("d1", "d2"):
            storage.create_session(user.id, digest, 3600.0)

        async def told(change: Callable[[], object], what: str) -> object:
            before = pokes.count
            result = change()
            await until(lambda: pokes.count > before, 5, f"the poke of {what}")
            return result

        assert storage.change_user("alice", "operator") == ("operator", "operator")
        assert storage.live_sessions({"d1", "d2"}) == {"d1": "operator", "d2": "operator"}

        await told(lambda: storage.end_session("d1"), "a logout")
        assert storage.live_sessions({"d1", "d2"}) == {"d2": "operator"}

        assert await told(lambda: storage.change_user("alice", "viewer"), "a new role") == (
            "operator",
            "viewer",
        )
        assert storage.live_sessions({"d2"}) == {}

        storage.create_session(user.id, "d3", 3600.0)
        await told(lambda: storage.change_user("alice", password_hash="hash-2"), "a password")
        assert storage.live_sessions({"d3"}) == {}
        changed = storage.user_by_name("alice")
        assert changed is not None and changed.password_hash == "hash-2"

        storage.create_session(user.id, "d4", 3600.0)
        assert await told(lambda: storage.delete_user("alice"), "a deletion") == "viewer"
        assert storage.live_sessions({"d4"}) == {} and storage.user_by_name("alice") is None
        assert storage.change_user("alice", "admin") is None
        assert storage.delete_user("alice") is None
    finally:
        await listener.stop()
