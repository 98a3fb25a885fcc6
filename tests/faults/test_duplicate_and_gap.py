"""Issue 6 (d): an engine that sends a duplicate and a gap (a raw websocket, not EngineLink,
which never misbehaves like this).

Rule 6: a resent seq is acknowledged and ignored; a resent copy that differs is an integrity
error and the first copy is kept. Rule 7: a gap makes the aggregator ask for a resend; a seq the
engine can resend is stored in order, one it no longer has is recorded in the run's log.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from protocol.messages import (
    ProtocolErrorMessage,
    RegisterEngine,
    RunStarted,
    RunStopped,
    TagsUpdated,
)
from protocol.models import TagValue
from tests.faults.harness import AggregatorProcess, Api
from tests.link.helpers import registration

RUN = "dup-gap-run"
T0 = round(time.time(), 3)


def sample(seq: int, value: int) -> TagsUpdated:
    tick = round(T0 + value * 0.05, 3)
    return TagsUpdated(
        seq=seq, time=tick, run_id=RUN, tags=[TagValue(name="Counter", value=value, tick=tick)]
    )


class RawEngine:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.acked = 0
        self.resend_requests: list[int] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            frame = json.loads(msg.data)
            if frame["type"] == "Ack":
                self.acked = max(self.acked, frame["seq"])
            elif frame["type"] == "ResendRequest":
                self.resend_requests.append(frame["from_seq"])

    async def send(self, message: Any) -> None:
        await self.ws.send_str(message.model_dump_json())

    async def wait(self, predicate: Any, what: str) -> None:
        async with asyncio.timeout(15):
            while not predicate():
                await asyncio.sleep(0.01)


async def test_duplicate_and_gap(aggregator: AggregatorProcess, api: Api, token: str) -> None:
    reg = registration()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"ws://127.0.0.1:{aggregator.port}/engine/ws",
            headers={"Authorization": f"Bearer {token}"},
        ) as ws,
    ):
        await ws.send_str(
            RegisterEngine(
                engine_id=reg.engine_id,
                computer_name=reg.computer_name,
                uod_name=reg.uod_name,
                session_id="raw-1",
                engine_version="test",
                protocol_version="1.0",
                uod=reg.uod,
                uod_hash="u",
                method_hash="m",
                clock=time.time(),
                last_seq=0,
            ).model_dump_json()
        )
        registered = json.loads((await ws.receive()).data)
        assert registered["type"] == "Registered" and registered["last_seq"] == 0
        engine = RawEngine(ws)

        await engine.send(RunStarted(seq=1, time=T0, run_id=RUN, started=T0, method_version=0))
        for value in range(1, 6):  # seq 2..6 carry samples 1..5
            await engine.send(sample(value + 1, value))
        await engine.wait(lambda: engine.acked == 6, "ack of 6")

        await engine.send(sample(4, 3))  # an identical duplicate: acknowledged, ignored
        await engine.send(sample(5, 400))  # a duplicate that differs: first copy kept
        await engine.wait(lambda: engine.acked == 6, "ack after duplicates")

        await engine.send(sample(8, 7))  # seq 7 (sample 6) skipped
        await engine.wait(lambda: 7 in engine.resend_requests, "a ResendRequest for seq 7")
        await engine.send(sample(7, 6))
        await engine.send(sample(8, 7))  # resend continues in order
        await engine.wait(lambda: engine.acked == 8, "ack of 8 after the resend")

        await engine.send(sample(10, 9))  # seq 9 (sample 8) skipped, and the engine lost it
        await engine.wait(lambda: 9 in engine.resend_requests, "a ResendRequest for seq 9")
        await engine.send(
            ProtocolErrorMessage(
                rule=7,
                seq=9,
                seq_end=9,
                message="messages 9..9 are no longer in the engine's outbox; resending from 10",
            )
        )
        await engine.send(sample(10, 9))
        await engine.send(sample(11, 10))
        await engine.send(
            RunStopped(seq=12, time=T0 + 1, run_id=RUN, stopped=T0 + 1, reason="stop")
        )
        await engine.wait(lambda: engine.acked == 12, "ack of 12")
        await ws.close()
        engine.reader.cancel()

    detail = await api.run(RUN)
    values = await api.counter_values(RUN)
    assert values == [1, 2, 3, 4, 5, 6, 7, 9, 10], "every sample the engine had, once, in order"
    assert detail["sample_count"] == 9
    assert detail["stopped"] is not None and detail["stop_reason"] == "stop"
    gaps = [line["text"] for line in detail["runlog"] if "gap" in line["text"]]
    assert len(gaps) == 1 and "9..9" in gaps[0], detail["runlog"]
    integrity = [e["message"] for e in detail["errors"] if "integrity" in e["message"]]
    assert len(integrity) == 1 and "seq 5" in integrity[0], detail["errors"]
    assert not any(
        "integrity" in e["message"] and "seq 4" in e["message"] for e in detail["errors"]
    )
