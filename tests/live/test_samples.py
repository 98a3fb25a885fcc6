"""Data-log samples reach a live plot whole: a slow client gets its tag values merged (newest
wins) but every stored sample, each once and in order, equal to what the plot API returns."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aggregator.api.service import API_STATE_KEY
from tests.aggregator.helpers import until
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine
from tests.live.test_backpressure import masked_text_frame, stalled_client

Clients = Callable[..., Any]
Frame = dict[str, Any]


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the socket")
            data += chunk
        return data

    first, second = exactly(2)
    size = second & 0x7F
    if size == 126:
        size = int.from_bytes(exactly(2), "big")
    elif size == 127:
        size = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(size)


def read_until(sock: socket.socket, done: Callable[[list[Frame]], bool]) -> list[Frame]:
    """Resume reading a stalled socket: every JSON frame until `done` says enough."""
    frames: list[Frame] = []
    while not done(frames):
        opcode, payload = read_frame(sock)
        if opcode == 0x1:
            frames.append(json.loads(payload))
    return frames


def changes(frames: list[Frame], topic: str) -> list[Any]:
    return [f["data"] for f in frames if f.get("topic") == topic and f.get("kind") == "change"]


async def test_slow_client_gets_every_sample_and_the_newest_values(
    api: Api, engine: FakeEngine, clients: Clients
) -> None:
    unit = engine.engine_id
    tags_topic, samples_topic = f"unit/{unit}/tags", f"unit/{unit}/samples"
    start = time.time()
    await engine.run_started("slow-1", start)
    sock = await asyncio.to_thread(stalled_client, api.agg.port, api.tokens["viewer"], tags_topic)
    try:
        sock.sendall(masked_text_frame(json.dumps({"action": "subscribe", "topic": samples_topic})))
        hub = api.agg.app[API_STATE_KEY].ws
        await until(lambda: hub.has_subscribers(samples_topic), 5, "samples subscribed")
        (stalled,) = [c for c in hub.clients if c.user.role == "viewer"]
        await until(lambda: not stalled.held, 5, "both snapshots queued")

        # Big live updates fill the socket buffers: the client's writer is stuck from here on.
        blob = "x" * 100_000
        for i in range(60):
            await engine.tags("slow-1", start + i * 1e-3, sample=False, ack=False, Blob=blob)
        # Then the engine's rhythm: live updates between data-log samples. Tick times are not
        # whole microseconds: storage rounds them, and so must the live samples.
        sent: list[tuple[float, float]] = []
        value = 0.0
        for i in range(150):
            t = start + 1 + i * 0.1 + 3.3e-7
            value = float(i)
            if i % 10 == 0:
                await engine.tags("slow-1", t, ack=False, FT01=value, PT01=-value)
                sent.append((t, value))
            else:
                await engine.tags("slow-1", t, sample=False, ack=False, FT01=value)
        await engine.wait_ack(engine.seq, timeout=20)

        assert stalled.queue.coalesced > 100  # the live values were merged while it stalled...
        assert not stalled.queue.overflowed and stalled in hub.clients

        def complete(frames: list[Frame]) -> bool:
            got = [s for d in changes(frames, samples_topic) for s in d["samples"]]
            newest = [t for d in changes(frames, tags_topic) for t in d if t["name"] == "FT01"]
            return (
                bool(got and newest)
                and got[-1]["values"]["FT01"] == sent[-1][1]
                and newest[-1]["value"] == value
            )

        frames = await asyncio.wait_for(asyncio.to_thread(read_until, sock, complete), 20)
    finally:
        sock.close()

    # ...but not the samples: each once, in order, with the values and (rounded) times stored.
    points = [(s["t"], s["values"]) for d in changes(frames, samples_topic) for s in d["samples"]]
    assert [d["run_id"] for d in changes(frames, samples_topic)] == ["slow-1"] * len(sent)
    assert points == [(round(t * 1e6) / 1e6, {"FT01": v, "PT01": -v}) for t, v in sent]
    ft01 = [t["value"] for d in changes(frames, tags_topic) for t in d if t["name"] == "FT01"]
    assert len(ft01) < 150 and ft01[-1] == value  # the display: newest wins

    status, plot = await api.call(
        "GET", f"/api/units/{quote(unit, safe='')}/plot?tags=FT01,PT01&points=1000", "viewer"
    )
    assert status == 200, plot
    assert isinstance(plot, dict)
    for series in plot["series"]:
        live = [(t, values[series["tag"]]) for t, values in points]
        assert list(zip(series["t"], series["v"], strict=True)) == live, series["tag"]


async def test_samples_topic_snapshot_and_live_only_changes(
    api: Api, engine: FakeEngine, clients: Clients
) -> None:
    """The snapshot names the run (its history is the plot API's); a live update between samples
    and a sample of no run (not stored) send nothing on the samples topic."""
    topic = f"unit/{engine.engine_id}/samples"
    start = time.time()
    await engine.run_started("r-2", start)
    client = await clients("viewer")
    await client.send({"action": "subscribe", "topic": topic})
    snapshot = await client.wait(lambda f: f.get("kind") == "snapshot", what="snapshot")
    assert snapshot["data"] == {"run_id": "r-2", "samples": []}

    await engine.tags(None, start - 0.1, FT01=0.5)  # outside the run: stored nowhere, not sent
    await engine.tags("r-2", start + 0.1, sample=False, FT01=1.0)
    await engine.tags("r-2", start + 0.2, FT01=1.0)
    await engine.tags("r-2", start + 0.25, sample=False, FT01=2.0)
    await engine.tags("r-2", start + 0.3, FT01=2.0)
    await client.wait(
        lambda f: f.get("kind") == "change" and f["data"]["samples"][0]["t"] > start + 0.29,
        what="the second sample",
    )
    got = [f["data"]["samples"] for f in client.frames if f.get("kind") == "change"]
    assert got == [
        [{"t": round((start + 0.2) * 1e6) / 1e6, "values": {"FT01": 1.0}}],
        [{"t": round((start + 0.3) * 1e6) / 1e6, "values": {"FT01": 2.0}}],
    ]
