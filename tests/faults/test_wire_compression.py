"""Issue 15 item 4: the link is compressed (permessage-deflate, context takeover) and still
stores every sample exactly once, in order, across a connection cut (a new connection starts a
new compression context: a stale one would garble or drop the replayed frames).

The bytes are counted on the socket by a loopback proxy between engine and aggregator.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from protocol import encode
from protocol.messages import TagsUpdated
from protocol.models import TagValue
from tests.faults.harness import (
    AggregatorProcess,
    Api,
    ScriptedEngine,
    TcpProxy,
    sample,
    until,
)

RATE = 20.0
EXTRA_TAGS = 10


class CountingProxy(TcpProxy):
    """Counts what TCP carries from the engine to the aggregator (framing included)."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.upstream_bytes = 0

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if peer is None or peer[1] != self.target_port:
            await super()._pipe(reader, writer)
            return
        try:
            while data := await reader.read(65536):
                self.upstream_bytes += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


def fields(n: int, engine: ScriptedEngine) -> dict[str, object]:
    """The numbered Counter plus slowly changing analog readings, like a real unit's scan."""
    base = sample(n, engine.run_id, engine.t0, engine.period)
    tick = base["time"]
    tags = list(base["tags"])
    tags += [
        TagValue(
            name=f"AI{i:02d}", value=round(10 * i + math.sin(n / 50 + i), 3), unit="bar", tick=tick
        )
        for i in range(EXTRA_TAGS)
    ]
    return {**base, "tags": tags}


async def produce(engine: ScriptedEngine, seconds: float) -> int:
    """Emit at RATE for `seconds`; returns the JSON bytes those frames take uncompressed."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    json_bytes = 0
    while loop.time() < end:
        engine.produced += 1
        message = fields(engine.produced, engine)
        json_bytes += len(encode(TagsUpdated(seq=engine.produced, **message)))
        engine.link.emit(TagsUpdated, **message)
        await asyncio.sleep(1 / RATE)
    return json_bytes


async def test_compressed_link_loses_and_duplicates_nothing(
    aggregator: AggregatorProcess, api: Api, token: str, tmp_path: Path
) -> None:
    proxy = CountingProxy(aggregator.port)
    await proxy.start()
    engine = ScriptedEngine(f"ws://127.0.0.1:{proxy.port}", token, tmp_path / "engine", RATE)
    try:
        await engine.start("compressed-run")
        await until(lambda: engine.link.connected, 15, "the engine to register")
        before = proxy.upstream_bytes
        json_bytes = await produce(engine, 2.0)
        await until(lambda: engine.link.acked_seq >= engine.link.high_water, 15, "acks")
        on_wire = proxy.upstream_bytes - before
        assert on_wire < 0.4 * json_bytes, (
            f"{on_wire} bytes on the socket for {json_bytes} bytes of JSON: not compressed"
        )

        await proxy.cut("reset")
        await produce(engine, 1.0)
        await proxy.restore()
        await until(lambda: engine.link.connected, 30, "reconnection")
        await produce(engine, 1.0)
        await until(lambda: engine.link.acked_seq >= engine.link.high_water, 30, "acks")
        assert proxy.connections >= 2
        await engine.stop_run()
        assert engine.link.pending == 0
        values = await api.counter_values("compressed-run")
        assert values == list(range(1, engine.produced + 1)), "lost, duplicated or out of order"
        detail = await api.run("compressed-run")
        assert detail["sample_count"] == engine.produced * (1 + EXTRA_TAGS), "duplicates"
        assert detail["stop_reason"] == "stop"
        problems = [e["message"] for e in detail["errors"] if "gap" in e["message"]]
        problems += [e["message"] for e in detail["errors"] if "integrity" in e["message"]]
        assert not problems, f"the aggregator recorded link problems: {problems}"
    finally:
        await engine.link.stop(flush_timeout=0)
        await proxy.stop()
