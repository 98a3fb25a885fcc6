"""Open /ws sockets follow their login session: when it ends (logout, expiry, a password change,
the user deleted) or the user's role changes, the socket is closed within a second, also when
the change was made by another process (the CLI on the same database).

One query per interval answers for every open socket (which of their sessions are still valid,
and with which role), and runs only while sockets are open. Each action and subscription is also
checked against the database before it runs, so nothing is accepted for a session in the moment
between its end and the next sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from aggregator.ws.hub import Viewer

log = logging.getLogger(__name__)

CLOSE_SESSION_ENDED = 4001
"""The socket's session ended (logout, expiry, new password, user deleted): log in again."""
CLOSE_ROLE_CHANGED = 4003
"""The user's role changed: reconnect to act with the new role."""

LiveSessions = Callable[[set[str]], Awaitable[dict[str, str]]]
"""Of these session digests, the valid ones with their user's current role."""


class Watched(Protocol):
    @property
    def viewer(self) -> Viewer: ...

    def end(self, code: int, reason: str) -> None: ...


def verdict(viewer: Viewer, alive: dict[str, str]) -> tuple[int, str] | None:
    """Why a socket of `viewer` must close, given the valid sessions and roles; None: it may
    stay. A viewer without a session (a test's hub) is not watched."""
    if not viewer.session:
        return None
    role = alive.get(viewer.session)
    if role is None:
        return (
            CLOSE_SESSION_ENDED,
            "your session ended (logged out, expired, new password or user removed); log in again",
        )
    if role != viewer.role:
        return CLOSE_ROLE_CHANGED, f"your role changed to {role}; reconnect"
    return None


class SessionWatch:
    def __init__(self, live_sessions: LiveSessions, interval: float = 0.5) -> None:
        self.interval = interval
        self._live_sessions = live_sessions
        self._sockets: set[Watched] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, socket: Watched) -> None:
        self._sockets.add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="setpoint-session-watch"
            )

    def remove(self, socket: Watched) -> None:
        self._sockets.discard(socket)

    async def check(self, socket: Watched) -> bool:
        """Before an action or subscription: is the socket's session still good? If not, the
        socket is ended and False returned."""
        viewer = socket.viewer
        if not viewer.session:
            return True
        found = verdict(viewer, await self._live_sessions({viewer.session}))
        if found is None:
            return True
        socket.end(*found)
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while self._sockets:
            await asyncio.sleep(self.interval)
            sockets = list(self._sockets)
            sessions = {s.viewer.session for s in sockets if s.viewer.session}
            if not sessions:
                continue
            try:
                alive = await self._live_sessions(sessions)
            except Exception:
                log.exception("checking the sessions of open /ws sockets failed; retrying")
                continue
            for socket in sockets:
                found = verdict(socket.viewer, alive)
                if found is not None:
                    socket.end(*found)
