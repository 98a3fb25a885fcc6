"""The engine's websocket client (engine/link/websocket.py, on the websockets library) against
aiohttp's server, which the aggregator serves with.

The link's data must arrive whole, once and in order whatever the frame size and whether the
server accepts compression; a refused upgrade must carry its HTTP status (the link tells a bad
token from a wrong address by it); a server's Close ends the reading.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from engine.link.websocket import HandshakeError, MsgType, connect
from tests.net import serve_ws


async def _server(compress: bool = True) -> tuple[web.AppRunner, str, dict[str, Any]]:
    seen: dict[str, Any] = {"compress": None, "texts": []}

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer good":
            return web.Response(status=401, text="no")
        ws = web.WebSocketResponse(compress=compress, max_msg_size=0)
        await ws.prepare(request)
        seen["compress"] = ws.compress
        await ws.ping(b"are you there")
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            if msg.data == "close please":
                await ws.close()
                break
            seen["texts"].append(msg.data)
            await ws.send_str(msg.data)
        return ws

    runner, url = await serve_ws(handler)
    return runner, url, seen


async def _echo(url: str, texts: list[str]) -> list[str]:
    ws = await connect(url, headers={"Authorization": "Bearer good"}, max_msg_size=8 << 20)
    back: list[str] = []
    for text in texts:
        await ws.send_str(text)
    async for message in ws:
        assert message.type is MsgType.TEXT
        back.append(message.data)
        if len(back) == len(texts):
            break
    await ws.close()
    assert ws.closed
    return back


@pytest.mark.parametrize("compress", [True, False])
async def test_every_message_comes_back_once_and_in_order(compress: bool) -> None:
    runner, url, seen = await _server(compress)
    try:
        # small, 16-bit and 64-bit lengths; repetitive (compressible) and not
        texts = [f'{{"seq": {i}, "v": {i * 0.1:.3f}}}' for i in range(200)]
        texts += ["x" * 200, "é" * 40_000, "".join(chr(32 + i % 90) for i in range(300_000))]
        back = await asyncio.wait_for(_echo(url, texts), 30)
        assert back == texts
        assert seen["texts"] == texts
        assert bool(seen["compress"]) is compress
    finally:
        await runner.cleanup()


async def test_a_refused_upgrade_carries_the_http_status() -> None:
    runner, url, _ = await _server()
    try:
        with pytest.raises(HandshakeError) as caught:
            await connect(url, headers={"Authorization": "Bearer bad"}, max_msg_size=1 << 20)
        assert caught.value.status == 401
    finally:
        await runner.cleanup()


async def test_the_servers_close_ends_the_reading() -> None:
    runner, url, _ = await _server()
    try:
        ws = await connect(url, headers={"Authorization": "Bearer good"}, max_msg_size=1 << 20)
        await ws.send_str("close please")
        got = [m async for m in ws]
        assert got == [] and ws.closed
        with pytest.raises(ConnectionError):
            await ws.send_str("after the close")
    finally:
        await runner.cleanup()


async def test_a_message_over_the_size_limit_ends_the_reading_with_an_error() -> None:
    runner, url, _ = await _server()
    try:
        ws = await connect(url, headers={"Authorization": "Bearer good"}, max_msg_size=1000)
        await ws.send_str("y" * 900)  # echoed: within the limit
        await ws.send_str("z" * 5000)  # sent is not limited; the echo is
        first = await ws.__anext__()
        assert first.type is MsgType.TEXT and first.data == "y" * 900
        second = await ws.__anext__()
        assert second.type is MsgType.ERROR and ws.exception() is not None
        assert ws.closed
    finally:
        await runner.cleanup()
