"""A client that stops reading never slows ingest or the other clients (bounded, coalesced)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import protocol as p
from aggregator.api.service import API_STATE_KEY
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine

Clients = Callable[..., Any]


def masked_text_frame(text: str) -> bytes:
    payload = text.encode()
    mask = os.urandom(4)
    n = len(payload)
    header = bytes([0x81]) + (
        bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def stalled_client(port: int, token: str, topic: str) -> socket.socket:
    """Handshake, subscribe, then never read again; a tiny receive buffer fills at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5.0)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.sendall(masked_text_frame(json.dumps({"action": "subscribe", "topic": topic})))
    return sock


async def test_stalled_client_does_not_slow_ingest_or_others(
    api: Api, engine: FakeEngine, clients: Clients
) -> None:
    topic = f"unit/{engine.engine_id}/tags"
    sock = await asyncio.to_thread(stalled_client, api.agg.port, api.tokens["viewer"], topic)
    try:
        hub = api.agg.app[API_STATE_KEY].ws
        await until(lambda: hub.has_subscribers(topic), 5, "stalled client subscribed")
        fast = await clients("operator")
        await fast.send({"action": "subscribe", "topic": topic})
        await fast.wait(lambda f: f.get("kind") == "snapshot", what="snapshot")

        blob = "x" * 100_000  # some 40 waiting frames fill the socket buffers (4 MiB)
        n = 400
        for i in range(n):
            await engine.tags(None, time.time(), sample=False, ack=False, FT01=float(i), Blob=blob)
        # every frame is acked although the stalled client's socket is full: ingest did not
        # wait on it (wait_ack's timeout bounds the test; how fast is bench/'s business)
        await engine.wait_ack(engine.seq, timeout=20)
        last = await fast.wait(
            lambda f: (
                f.get("kind") == "change"
                and any(t["name"] == "FT01" and t["value"] == float(n - 1) for t in f["data"])
            ),
            timeout=20,
            what="the newest value at the fast client",
        )
        assert last["topic"] == topic

        (stalled,) = [c for c in hub.clients if c.user.role == "viewer"]
        assert not stalled.queue.overflowed
        assert len(stalled.queue) <= 1  # every waiting tag change merged into one frame
        assert stalled.queue.coalesced > n // 2
        # its writer is stuck on the full socket, so further changes keep merging in the queue
        for value in (-1.0, -2.0, -3.0):
            await engine.tags(None, time.time(), sample=False, FT01=value)
        await until(lambda: len(stalled.queue) == 1, 5, "a waiting frame")
        (waiting,) = stalled.queue.take()
        values = {t["name"]: t["value"] for t in waiting["data"]}
        assert values["FT01"] == -3.0  # newest value wins, one entry per tag
        assert len(waiting["data"]) == len(values)
        # the stalled client was neither dropped nor able to disturb the link
        assert stalled in hub.clients
        assert not [m for m in engine.received if isinstance(m, p.ProtocolErrorMessage)]
    finally:
        sock.close()
