"""Open /ws sockets follow their login session: when it ends (logout, expiry, a password change,
the user deleted) or the user's role changes, the socket is closed within a second, also when
the change was made by another process (the CLI on the same database).

The sweep of every open socket's session is one half of security_poll.SecurityPoll (the other:
the engine links' tokens): one query answers for all of them, when a change is told
(security_notice.py), when a session expires and on a slow safety-net period, and only while
sockets are open. Each action and subscription is also checked against the database before it
runs, so nothing is accepted for a session in the moment between its end and the next sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aggregator.security_poll import Answer, Request, SecurityPoll
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
    def __init__(
        self, live_sessions: LiveSessions, poll: SecurityPoll | None = None, interval: float = 0.5
    ) -> None:
        """`poll`: the app's shared poll (AppContext.security); None: a poll of its own that
        checks sessions only (a hub without engine links)."""
        self._live_sessions = live_sessions
        self._sockets: set[Watched] = set()
        self.poll = poll if poll is not None else SecurityPoll(self._sessions_only, interval)
        self.poll.sessions = self._request

    async def _sessions_only(self, _tokens: set[str], sessions: set[str]) -> Answer:
        return set(), await self._live_sessions(sessions)

    def add(self, socket: Watched) -> None:
        self._sockets.add(socket)
        self.poll.wake()

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
        await self.poll.stop()

    def _request(self) -> Request | None:
        """The open sockets' sessions, and what to do with the answer (for those sockets only:
        one opened while the query ran was checked when it opened)."""
        if not self._sockets:
            return None
        sockets = list(self._sockets)

        def apply(alive: Any) -> None:
            for socket in sockets:
                found = verdict(socket.viewer, alive)
                if found is not None:
                    socket.end(*found)

        return {s.viewer.session for s in sockets if s.viewer.session}, apply
