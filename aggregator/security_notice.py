"""Security changes told to the serving processes at once, instead of polled for.

A revoked engine token, an ended session, a new password or role must end the open engine links
and /ws sockets they concern (protocol rule 1, docs/api.md). Such a change is committed by this
process's API, by another node of a cluster, or by the CLI in another process. The serving
process used to find them by polling the database twice a second: two loop wake-ups a second,
about a third of the CPU of an aggregator with one engine (bench/README.md, "Aggregator CPU").
Now whoever commits such a change tells the site (`tell`: store.accounts.Accounts, which makes
every such change for the API and the CLI), and the serving processes listen (`Listener`),
which pokes security_poll.SecurityPoll:

- PostgreSQL: NOTIFY on channel `setpoint_security`; every node LISTENs on a connection of its
  own (other hosts included).
- SQLite: every process using the file is on this host. The serving process binds a Linux
  abstract-namespace datagram socket named for the database file (no file to go stale, no path
  length limit); a sender's datagram carries nothing but the wake-up. Anyone on the host may send
  one: all it can do is cause one check of the database, and pokes are rate-limited there.

The poll stays as the safety net, slowed down while the listener is up: for changes made behind
Setpoint's back (a hand-made SQL edit) and for a listener that is down (then it polls at its old
rate; where abstract sockets do not exist, always).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sys
from collections.abc import Callable

import sqlalchemy as sa

log = logging.getLogger(__name__)

PG_CHANNEL = "setpoint_security"
RETRY_SECONDS = 5.0
"""How long a lost PostgreSQL listener waits before it connects again (the poll runs fast
meanwhile)."""


def socket_address(engine: sa.Engine) -> str | None:
    """The abstract socket of a SQLite file database; None for anything else or off Linux."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or not sys.platform.startswith("linux"):
        return None
    digest = hashlib.sha256(os.path.realpath(database).encode()).hexdigest()[:32]
    return f"\0setpoint-security-{digest}"


def tell(engine: sa.Engine) -> None:
    """Tell the serving processes of this database that tokens, sessions or users changed.
    Call it after the change is committed (a poked process that read the database before the
    commit would keep its old answer). Never raises: the safety-net poll still finds it."""
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": PG_CHANNEL})
                conn.commit()
            return
        address = socket_address(engine)
        if address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            with contextlib.suppress(ConnectionRefusedError, FileNotFoundError, BlockingIOError):
                sock.sendto(b"!", address)  # refused: no serving process right now
    except Exception as exc:
        log.warning("telling the serving processes of a security change failed: %s", exc)


class Listener:
    """Hears `tell` from any process and calls `poke` on the event loop."""

    def __init__(self, engine: sa.Engine, poke: Callable[[], None]) -> None:
        self._engine = engine
        self._poke = poke
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        """Whether every `tell` reaches this process now (the poll may slow down)."""

    async def start(self) -> None:
        if self._engine.dialect.name == "postgresql":
            self._task = asyncio.get_running_loop().create_task(
                self._listen_pg(), name="setpoint-security-listen"
            )
            return
        address = socket_address(self._engine)
        if address is None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
        except OSError as exc:
            # another process serves this file: it hears the notices, we keep polling
            log.warning("security notices: %s; polling the database instead", exc)
            sock.close()
            return
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._drain)
        self._sock = sock
        self.listening = True

    async def stop(self) -> None:
        self.listening = False
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _drain(self) -> None:
        assert self._sock is not None
        with contextlib.suppress(BlockingIOError):
            while True:
                self._sock.recv(64)
        self._poke()

    async def _listen_pg(self) -> None:
        import psycopg  # only PostgreSQL sites have it

        url = self._engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {PG_CHANNEL}")
                    self.listening = True
                    self._poke()  # anything told while we were not listening
                    async for _ in conn.notifies():
                        self._poke()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("security notices: listening on PostgreSQL failed: %s", exc)
            self.listening = False
            self._poke()  # the poll re-times itself to its fast period while we are deaf
            await asyncio.sleep(RETRY_SECONDS)
