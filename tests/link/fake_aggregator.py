"""A small stand-in aggregator for the link tests: token check, Registered, in-order store, Ack.

It stores like the real one must: each seq once, in order (frames that arrive ahead of a missing
seq wait in a buffer), and acknowledges the contiguous stored prefix after each frame.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel

from protocol.messages import STORED_MESSAGE_TYPES, Ack, Registered
from tests.net import free_port as free_port

STORED = {kind.__name__ for kind in STORED_MESSAGE_TYPES}


async def until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait for a condition, failing the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


class FakeAggregator:
    def __init__(
        self, token: str = "good-token", port: int | None = None, heartbeat_interval: float = 5.0
    ) -> None:
        self.token = token
        self.port = port or free_port()
        self.heartbeat_interval = heartbeat_interval
        self.high = 0
        self.stored: list[dict[str, Any]] = []
        self.buffer: dict[int, dict[str, Any]] = {}
        self.duplicates = 0
        self.received: list[dict[str, Any]] = []
        self.registrations: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self.refused = 0
        self.results: dict[str, dict[str, Any]] = {}
        self.drop: set[int] = set()
        self.silent_connections = 0
        self.sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def ws(self) -> web.WebSocketResponse:
        [ws] = self.sockets
        return ws

    def values(self) -> list[Any]:
        return [f["tags"][0]["value"] for f in self.stored if f["type"] == "TagsUpdated"]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/engine/ws", self._handler)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Go away: close every engine socket and stop listening (state is kept for a restart)."""
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def send(self, message: BaseModel) -> None:
        await self.ws.send_str(message.model_dump_json())

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        self.auth_headers.append(auth)
        if auth != f"Bearer {self.token}":
            self.refused += 1
            return web.Response(status=401, text="invalid engine token")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.add(ws)
        silent = self.silent_connections > 0
        if silent:
            self.silent_connections -= 1
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                self.received.append(frame)
                kind = frame["type"]
                if kind == "RegisterEngine":
                    self.registrations.append(frame)
                    await ws.send_str(
                        Registered(
                            engine_id=frame["engine_id"],
                            session_id=frame["session_id"],
                            last_seq=self.high,
                            clock_offset=0.0,
                            protocol_version="1.0",
                            heartbeat_interval=self.heartbeat_interval,
                        ).model_dump_json()
                    )
                elif silent:
                    continue
                elif kind in STORED:
                    self._store(frame)
                    await ws.send_str(Ack(seq=self.high).model_dump_json())
                elif kind == "CommandResult":
                    self.results[frame["id"]] = frame
        finally:
            self.sockets.discard(ws)
        return ws

    def _store(self, frame: dict[str, Any]) -> None:
        seq = frame["seq"]
        if seq in self.drop:
            self.drop.discard(seq)
            return
        if seq <= self.high or seq in self.buffer:
            self.duplicates += 1
            return
        self.buffer[seq] = frame
        while self.high + 1 in self.buffer:
            self.high += 1
            self.stored.append(self.buffer.pop(self.high))
