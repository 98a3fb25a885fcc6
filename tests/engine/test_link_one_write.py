"""Frames the link sends together go in one write (engine/link/websocket.py, issue 15 item 3).

A sample and the run-log lines of the same scan reach the aggregator in one TCP segment, so it
reads, stores and acknowledges them together: one Ack a second instead of two, one wake-up less
on each side. The frames themselves are those `send_str` sends, in the same order.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from engine.link.websocket import MsgType, connect
from tests.net import serve_ws


async def _server(compress: bool) -> tuple[web.AppRunner, str, list[str]]:
    texts: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(compress=compress, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                texts.append(msg.data)
                await ws.send_str(f"ack {len(texts)}")
        return ws

    runner, url = await serve_ws(handler)
    return runner, url, texts


@pytest.mark.parametrize("compress", [True, False])
async def test_send_strs_writes_the_frames_once_in_order_in_one_write(compress: bool) -> None:
    runner, url, seen = await _server(compress)
    try:
        ws = await connect(url, headers={}, max_msg_size=1 << 20, compress=compress)
        writes: list[bytes] = []
        transport: Any = ws._conn.transport
        write = transport.write

        def spy(data: bytes) -> None:
            writes.append(bytes(data))
            write(data)

        transport.write = spy
        batches = [
            [f'{{"seq": {i}, "tags": [{i * 0.1:.3f}]}}' for i in range(n)] for n in (1, 2, 3, 40)
        ]
        for batch in batches:
            await ws.send_strs(batch)
        await ws.send_str("alone")
        sent = [text for batch in batches for text in batch] + ["alone"]
        acks = 0
        async for message in ws:
            assert message.type is MsgType.TEXT
            acks += 1
            if acks == len(sent):
                break
        assert seen == sent
        assert len(writes) == len(batches) + 1  # one write per batch, one for the lone frame
        await ws.close()
        assert ws.closed
    finally:
        await runner.cleanup()


async def test_send_strs_on_a_closed_websocket_is_a_connection_error() -> None:
    runner, url, _ = await _server(True)
    try:
        ws = await connect(url, headers={}, max_msg_size=1 << 20)
        await ws.close()
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(ws.send_strs(["late"]), 5)
    finally:
        await runner.cleanup()
