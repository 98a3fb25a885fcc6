"""Revoked engine tokens end their links: at once when revoked through this aggregator's API, and
within `interval` when revoked by another process (the CLI against the same database).

Why a poll: the CLI cannot reach the serving process, and a database notification would work on
PostgreSQL only. One indexed query per interval covers every open link, whatever their number,
and runs only while links are open; a per-frame check would cost a query per message on the
ingest path, and a per-link timer one query per link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregator.context import AppContext

log = logging.getLogger(__name__)


class TokenWatch:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def watch(self, ctx: AppContext) -> None:
        """A link registered: make sure its token is being watched."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(ctx), name="setpoint-token-watch"
            )

    def revoked(self, ctx: AppContext, name: str) -> int:
        """Token `name` was revoked here: end its links now; returns how many."""
        ended = 0
        for connection in list(ctx.connections.values()):
            if connection.token_name == name:
                connection.token_revoked()
                ended += 1
        return ended

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, ctx: AppContext) -> None:
        while ctx.connections:
            await asyncio.sleep(self.interval)
            connections = list(ctx.connections.values())
            if not connections:
                break
            try:
                valid = await ctx.read(
                    ctx.storage.valid_engine_tokens, {c.token_name for c in connections}
                )
            except Exception:
                log.exception("checking the engine tokens of open links failed; retrying")
                continue
            for connection in connections:
                if connection.token_name not in valid:
                    connection.token_revoked()
