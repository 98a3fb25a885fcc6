"""Live sessions follow the account (issue 13 item 2): a /ws socket closes within a second when
its session ends (logout, expiry, new password, user deleted; code 4001) or its user's role
changes (4003), also when the change comes from another process, and nothing more is accepted
for it in the meantime."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from aggregator.security import new_token, token_hash
from aggregator.security_notice import tell
from aggregator.store.tables import T_SESSION, T_USER
from aggregator.ws.session_watch import CLOSE_ROLE_CHANGED, CLOSE_SESSION_ENDED
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.live.conftest import WsClient

WITHIN = 1.0


def _field(row: Any, name: str) -> Any:
    """A column of a store row, a dict or a typed row."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


class UserSocket(WsClient):
    def __init__(self, api: Api, role: str, name: str, token: str) -> None:
        super().__init__(api, role)
        self.name = name
        self.token = token


async def _socket(api: Api, role: str = "operator", lifetime: float = 3600.0) -> UserSocket:
    """A new user with a session of its own, connected to /ws and subscribed."""
    storage = api.agg.ctx.storage
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    storage.add_user(name, role, storage_hash(api))
    user = storage.user_by_name(name)
    assert user is not None
    token = new_token()
    storage.create_session(_field(user, "id"), token_hash(token), lifetime)
    client = UserSocket(api, role, name, token)
    await client.connect(headers={"Authorization": f"Bearer {token}"})
    await client.send({"action": "subscribe", "topic": "units"})
    await client.wait(lambda f: f.get("topic") == "units", what="units snapshot")
    return client


def storage_hash(api: Api) -> str:
    user = api.agg.ctx.storage.user_by_name(api.names["viewer"])
    assert user is not None
    return str(_field(user, "password_hash"))


async def _closes(client: WsClient, code: int, change: Callable[[], Awaitable[object]]) -> float:
    assert client.ws is not None and not client.ws.closed
    await change()
    started = time.monotonic()
    await until(client.closed.is_set, WITHIN + 1.0, "the socket to close")
    took = time.monotonic() - started
    assert client.ws.close_code == code
    assert took < WITHIN, f"closed after {took:.2f} s"
    return took


async def test_logout_closes_the_sessions_sockets(api: Api) -> None:
    client = await _socket(api)
    other = await _socket(api)
    token = client.token

    async def logout() -> None:
        async with api.http.post(
            f"{api.url}/api/auth/logout", headers={"Authorization": f"Bearer {token}"}
        ) as response:
            assert response.status == 204

    await _closes(client, CLOSE_SESSION_ENDED, logout)
    assert not other.closed.is_set()  # another session of another user is untouched
    await other.send({"action": "ping", "id": "still"})
    await other.wait(lambda f: f.get("id") == "still")
    await other.close()


async def test_expiry_closes_the_socket(api: Api) -> None:
    client = await _socket(api, lifetime=1.5)
    user = api.agg.ctx.storage.user_by_name(client.name)
    assert user is not None
    with api.agg.ctx.storage.engine.connect() as conn:
        expires = conn.execute(
            sa.select(T_SESSION.c.expires).where(T_SESSION.c.user_id == _field(user, "id"))
        ).scalar_one()

    async def expire() -> None:
        await until(lambda: time.time() >= expires, 5.0, "the session to expire")

    await _closes(client, CLOSE_SESSION_ENDED, expire)


async def test_password_change_demotion_and_deletion_over_http(api: Api) -> None:
    for change, body in (
        ("PATCH", {"password": "a new long passphrase 7"}),
        ("PATCH", {"role": "viewer"}),
        ("DELETE", None),
    ):
        client = await _socket(api)
        name = client.name

        async def act(method: str = change, json: object = body, user: str = name) -> None:
            kw = {} if json is None else {"json": json}
            status, _ = await api.call(method, f"/api/users/{user}", "admin", **kw)
            assert status in (200, 204)

        await _closes(client, CLOSE_SESSION_ENDED, act)


async def test_a_role_changed_in_the_database_closes_with_4003(api: Api) -> None:
    """What a command-line role change in another process does: the session stays, the role is
    new, and the change is told to the serving process (security_notice.py)."""
    client = await _socket(api, "operator")

    async def demote() -> None:
        engine = sa.create_engine(str(api.agg.ctx.storage.engine.url))
        with engine.begin() as conn:
            conn.execute(T_USER.update().where(T_USER.c.name == client.name).values(role="viewer"))
        tell(engine)
        engine.dispose()

    await _closes(client, CLOSE_ROLE_CHANGED, demote)


async def test_a_change_nobody_told_is_found_by_the_safety_net(api: Api) -> None:
    """A hand-made SQL edit tells nobody: the poll's slow period still finds it (shortened here
    from its 5 s so that the test is quick)."""
    ctx = api.agg.ctx
    assert ctx.notices.listening  # SQLite file on Linux: notices reach the process
    ctx.security.safety_interval = 0.5
    client = await _socket(api, "operator")

    async def demote() -> None:
        engine = sa.create_engine(str(ctx.storage.engine.url))
        with engine.begin() as conn:
            conn.execute(T_USER.update().where(T_USER.c.name == client.name).values(role="viewer"))
        engine.dispose()

    await _closes(client, CLOSE_ROLE_CHANGED, demote)


async def test_cli_passwd_in_another_process_closes_the_socket(api: Api) -> None:
    client = await _socket(api)
    url = str(api.agg.ctx.storage.engine.url)

    async def passwd() -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "aggregator.cli",
                "user",
                "passwd",
                client.name,
                "--password-stdin",
                "--database",
                url,
            ],
            input="another long passphrase 9\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr

    await _closes(client, CLOSE_SESSION_ENDED, passwd)


async def test_nothing_is_accepted_once_the_session_is_gone(api: Api) -> None:
    """An action sent right after the session ended, before the next sweep, is refused."""
    client = await _socket(api)
    with api.agg.ctx.storage.engine.begin() as conn:
        conn.execute(T_SESSION.delete().where(T_SESSION.c.token_hash == token_hash(client.token)))
    await client.send({"action": "status", "id": "late", "unit": "any"})
    await client.send({"action": "subscribe", "topic": "units", "id": "late-sub"})
    await until(client.closed.is_set, WITHIN, "the socket to close")
    assert client.ws is not None and client.ws.close_code == CLOSE_SESSION_ENDED
    late = [f for f in client.frames if f.get("id") == "late"]
    assert all(f["status"] != "finished" for f in late)
    ended = [f for f in late if f["status"] == "exception"]
    assert not ended or "session ended" in ended[-1]["message"]
    snapshots = [f for f in client.frames if f.get("kind") == "snapshot"]
    assert len(snapshots) == 1  # the one from before; the late subscription got none
