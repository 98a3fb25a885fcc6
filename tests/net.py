"""Loopback helpers the tests share."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

from aiohttp import web


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve_ws(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, str]:
    """An aiohttp server with `handler` at /engine/ws on a free loopback port: (runner, ws URL).
    The caller cleans the runner up."""
    app = web.Application()
    app.router.add_get("/engine/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"ws://127.0.0.1:{port}/engine/ws"
