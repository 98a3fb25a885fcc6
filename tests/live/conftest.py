"""/ws tests reuse the API fixtures: a real aggregator, users of each role, a scripted engine."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from aggregator.ws.handler import WS_SETTINGS_KEY
from tests.aggregator.conftest import pg_database  # noqa: F401
from tests.api.conftest import Api, api, db_url, engine, password_hash, template_db  # noqa: F401

Frame = dict[str, Any]


class WsClient:
    """A browser-like /ws client: answers the server's pings, keeps every frame it gets."""

    def __init__(self, api: Api, role: str, *, auto_pong: bool = True) -> None:  # noqa: F811
        self.api = api
        self.role = role
        self.auto_pong = auto_pong
        self.frames: list[Frame] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, **kw: Any) -> WsClient:
        if not kw:
            kw = {"headers": self.api.auth(self.role)}
        self.ws = await self.api.http.ws_connect(f"{self.api.url}/ws", **kw)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.frames.append(frame)
            if self.auto_pong and frame.get("type") == "ping":
                await self.ws.send_json({"action": "pong"})
        self.closed.set()

    async def send(self, message: Frame) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def wait(
        self, predicate: Callable[[Frame], bool], timeout: float = 5.0, what: str = ""
    ) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames:
                if predicate(frame):
                    return frame
            if time.monotonic() > deadline:
                raise AssertionError(f"no frame {what} in {timeout} s; got {self.frames[-5:]}")
            await asyncio.sleep(0.005)

    async def task_end(self, request_id: str, timeout: float = 5.0) -> Frame:
        return await self.wait(
            lambda f: (
                f.get("id") == request_id
                and f.get("status") in ("finished", "exception", "interrupted")
            ),
            timeout,
            f"ending task {request_id}",
        )

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


def heartbeat(api: Api, ping_interval: float, timeout: float) -> None:  # noqa: F811
    settings = api.agg.app[WS_SETTINGS_KEY]
    settings.ping_interval = ping_interval
    settings.timeout = timeout


@pytest.fixture
async def clients(api: Api) -> AsyncIterator[Callable[..., Any]]:  # noqa: F811
    made: list[WsClient] = []

    async def make(role: str = "operator", **kw: Any) -> WsClient:
        client = WsClient(api, role, **kw)
        await client.connect()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
