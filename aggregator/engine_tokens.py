"""Revoked engine tokens end their links: at once when revoked through this aggregator's API, and
as soon as the change is told (security_notice.py) when revoked by another process (the CLI
against the same database).

The check of the open links' tokens is one half of security_poll.SecurityPoll (the other: the
/ws sockets' sessions), which says why it is a poll and why one for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aggregator.security_poll import Request, SecurityPoll

if TYPE_CHECKING:
    from aggregator.context import AppContext


class TokenWatch:
    def __init__(self, poll: SecurityPoll) -> None:
        self.poll = poll
        self._ctx: AppContext | None = None
        poll.tokens = self._request

    def watch(self, ctx: AppContext) -> None:
        """A link registered: make sure its token is being watched."""
        self._ctx = ctx
        self.poll.wake()

    def revoked(self, ctx: AppContext, name: str) -> int:
        """Token `name` was revoked here: end its links now; returns how many."""
        ended = 0
        for connection in list(ctx.connections.values()):
            if connection.token_name == name:
                connection.token_revoked()
                ended += 1
        return ended

    async def stop(self) -> None:
        await self.poll.stop()

    def _request(self) -> Request | None:
        """The open links' token names, and what to do with the valid ones (for those links
        only: one that registered while the query ran was checked when it registered)."""
        if self._ctx is None or not self._ctx.connections:
            return None
        connections = list(self._ctx.connections.values())

        def apply(valid: Any) -> None:
            for connection in connections:
                if connection.token_name not in valid:
                    connection.token_revoked()

        return {c.token_name for c in connections}, apply
