"""The engine's side of /engine/ws for benchmarks that play engines in their own process.

Raw protocol frames cost a benchmark far less than real engine processes, so many simulated
engines fit in one process next to the aggregator being measured. Imported from the scripts'
directory like serve_proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence

import aiohttp

import protocol as p

WS_MAX_MSG_SIZE = 4 * 1024 * 1024
"""aiohttp's own default for ws_connect."""


async def connect_engine(
    http: aiohttp.ClientSession,
    url: str,
    token: str,
    engine_id: str,
    tags: Sequence[p.TagDescription],
    *,
    computer_name: str = "bench-pc",
    engine_version: str = "0",
    uod_hash: str = "h",
    method_hash: str = "m",
    max_msg_size: int = WS_MAX_MSG_SIZE,
) -> aiohttp.ClientWebSocketResponse:
    """Opens `url`/engine/ws with an engine token and sends RegisterEngine (a fresh session, the
    clock now, a UOD named Bench); the aggregator's Registered is left for the caller to read.

    The identity fields are arguments only so each benchmark keeps registering as it always
    did."""
    ws = await http.ws_connect(
        f"{url}/engine/ws",
        headers={"Authorization": f"Bearer {token}"},
        max_msg_size=max_msg_size,
    )
    await ws.send_bytes(
        p.encode(
            p.RegisterEngine(
                engine_id=engine_id,
                computer_name=computer_name,
                uod_name="Bench",
                session_id=uuid.uuid4().hex,
                engine_version=engine_version,
                protocol_version=p.PROTOCOL_VERSION,
                uod=p.UodDescription(name="Bench", tags=list(tags)),
                uod_hash=uod_hash,
                method_hash=method_hash,
                clock=time.time(),
            )
        )
    )
    return ws


async def answer_pings(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Keeps reading so the aggregator's frames never back up, and answers its Pings: an engine
    silent for three heartbeat intervals is dropped (rule 10), which would end the measurement."""
    with contextlib.suppress(asyncio.CancelledError):
        async for msg in ws:
            if msg.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                frame = p.decode(msg.data)
                if isinstance(frame, p.Ping):
                    await ws.send_bytes(p.encode(p.CommandResult(id=frame.id, ok=True)))


def stamped_update(seq: int, names: Sequence[str], *, sample: bool) -> bytes:
    """A TagsUpdated frame whose every value is its send time, so that whoever receives it
    (a /ws client, an OPC UA client) can tell the latency with one clock."""
    now = time.time()
    return p.encode(
        p.TagsUpdated(
            seq=seq,
            time=now,
            sample=sample,
            tags=[p.TagValue(name=n, value=now, tick=now) for n in names],
        )
    )
