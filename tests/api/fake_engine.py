"""A scripted engine speaking raw protocol frames, for the API and /ws tests.

It registers, sends stored messages with increasing seq, and answers every aggregator request
with a CommandResult decided by `answer` (ok by default), recording what it was asked."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from pydantic import JsonValue

import protocol as p
from tests.aggregator.helpers import UOD, Aggregator, RawEngine, until

Request = (
    p.ControlCommand
    | p.InvokeCommand
    | p.SetMethod
    | p.CancelLine
    | p.ForceLine
    | p.ResumeLine
    | p.AlarmCommand
    | p.RunModel
    | p.CancelModel
)
Answer = Callable[[Any], tuple[bool, str | None, JsonValue] | None]


def ok(_: Any) -> tuple[bool, str | None, JsonValue]:
    return True, None, None


class FakeEngine(RawEngine):
    def __init__(
        self,
        agg: Aggregator,
        engine_id: str | None = None,
        uod: p.UodDescription = UOD,
    ) -> None:
        super().__init__(agg, engine_id)
        self.uod = uod
        self.answer: Answer = ok
        self.requests: list[Any] = []
        self.model_requests: list[p.RunModel | p.CancelModel] = []
        self.seq = 0

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                continue
            message = p.decode(msg.data)
            self.received.append(message)
            if isinstance(message, p.RunModel | p.CancelModel):
                # kept apart: the aggregator asks for one on its own at every Start (the
                # prediction made at Start), which tests of other requests do not count
                self.model_requests.append(message)
                await self.send(p.CommandResult(id=message.id, seq=self.seq, ok=True))
                if isinstance(message, p.RunModel):
                    await self.send(
                        p.ModelProgress(
                            model_id=message.id,
                            status="exception",
                            data={"reason": "the fake engine has no process model"},
                        )
                    )
            elif isinstance(message, Request):
                self.requests.append(message)
                decision = self.answer(message)
                if decision is None:
                    continue  # stay silent: the aggregator must time out
                good, error, data = decision
                await self.send(
                    p.CommandResult(id=message.id, seq=self.seq, ok=good, error=error, data=data)
                )
            elif isinstance(message, p.Ping):
                await self.send(p.CommandResult(id=message.id, seq=self.seq, ok=True))
        self.closed.set()

    async def start(self) -> p.Registered:
        if self.ws is None or self.ws.closed:
            await self.connect()
        await self.send(
            p.RegisterEngine(
                engine_id=self.engine_id,
                computer_name="pc",
                uod_name=self.uod.name,
                session_id=uuid.uuid4().hex,
                engine_version="0.1.0",
                protocol_version=p.PROTOCOL_VERSION,
                uod=self.uod,
                uod_hash="h",
                method_hash="m",
                clock=time.time(),
            )
        )
        registered: p.Registered = await self.wait_for(p.Registered)
        self.seq = registered.last_seq
        return registered

    def next(self) -> int:
        self.seq += 1
        return self.seq

    async def emit(self, build: Callable[[int], Any], *, ack: bool = True) -> int:
        seq = self.next()
        await self.send(build(seq))
        if ack:
            await self.wait_ack(seq)
        return seq

    async def tags(
        self,
        run_id: str | None,
        t: float,
        *,
        sample: bool = True,
        ack: bool = True,
        **values: p.ScalarValue,
    ) -> int:
        return await self.tag_values(run_id, t, values, sample=sample, ack=ack)

    async def tag_values(
        self,
        run_id: str | None,
        t: float,
        values: Mapping[str, p.ScalarValue],
        *,
        sample: bool = True,
        ack: bool = True,
    ) -> int:
        return await self.emit(
            lambda seq: p.TagsUpdated(
                seq=seq,
                time=t,
                run_id=run_id,
                sample=sample,
                tags=[p.TagValue(name=k, value=v, tick=t) for k, v in values.items()],
            ),
            ack=ack,
        )

    async def control_state(
        self, state: p.SystemState, run_id: str | None = None, **extra: Any
    ) -> int:
        return await self.emit(
            lambda seq: p.ControlState(
                seq=seq, time=time.time(), run_id=run_id, state=state, **extra
            )
        )

    async def method(self, version: int, lines: list[tuple[str, str]]) -> int:
        return await self.emit(
            lambda seq: p.Method(
                seq=seq,
                time=time.time(),
                version=version,
                lines=[p.MethodLine(id=i, text=t) for i, t in lines],
            )
        )

    async def run_started(self, run_id: str, started: float, user: str | None = None) -> int:
        return await self.emit(
            lambda seq: p.RunStarted(
                seq=seq, time=started, run_id=run_id, started=started, method_version=1, user=user
            )
        )

    async def run_stopped(self, run_id: str, stopped: float) -> int:
        return await self.emit(
            lambda seq: p.RunStopped(
                seq=seq, time=stopped, run_id=run_id, stopped=stopped, reason="stop"
            )
        )


async def wait_online(agg: Aggregator, engine_id: str) -> None:
    await until(
        lambda: engine_id in agg.ctx.live.engines and agg.ctx.live.engines[engine_id].online,
        10.0,
        f"{engine_id} online",
    )
