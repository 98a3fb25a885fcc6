"""A lightweight scripted engine for bench_site.py: speaks the engine protocol over a real
websocket, keeps its unacknowledged frames in memory (the real engine keeps them in a durable
SQLite outbox, which would make 100 engines in one process cost more than the aggregators being
measured), and fails over between aggregator URLs like `engine.link.client.EngineLink`: after a
lost link or a failed attempt, the next URL in order with the real LinkPolicy back-off.

Resend after a reconnect follows rules 6-8: RegisterEngine carries the highest seq produced,
Registered says what the site stored, the rest is resent in order marked historical.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import aiohttp

import protocol as p
from engine.link.machine import LinkPolicy

POLICY = LinkPolicy()
"""The engine's own defaults: 0.5 s back-off at first, doubling to 30 s, jitter 0.5."""


def uod(tags: int) -> p.UodDescription:
    return p.UodDescription(
        name="Bench",
        tags=[p.TagDescription(name=f"T{i:03d}", unit="bar", kind="reading") for i in range(tags)],
    )


@dataclass
class SiteEngine:
    engine_id: str
    token: str
    urls: list[str]
    run_id: str
    tags: int = 100
    seq: int = 0
    acked: int = 0
    url_index: int = 0
    online: bool = False
    registered_at: float = 0.0
    """time.monotonic() of the last Registered."""
    registered_url: str = ""
    connections: int = 0
    errors: list[str] = field(default_factory=list)
    """Unexpected exceptions of connection attempts (the bench reports them)."""
    unacked: OrderedDict[int, p.TagsUpdated | p.RunStarted | p.RunStopped] = field(
        default_factory=OrderedDict
    )
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _task: asyncio.Task[None] | None = None
    _session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    _rng: random.Random = field(default_factory=random.Random)
    _values: list[float] = field(default_factory=list)
    _attempt: int = 0

    @property
    def attempts_since_online(self) -> int:
        return self._attempt

    @property
    def url(self) -> str:
        return self.urls[self.url_index]

    def start(self, http: aiohttp.ClientSession) -> None:
        self._task = asyncio.create_task(self._run(http), name=f"engine {self.engine_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ws is not None:
            await self._ws.close()
        self.online = False

    # --- producing ------------------------------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def emit(self, message: p.TagsUpdated | p.RunStarted | p.RunStopped) -> None:
        """Into the (in-memory) outbox; onto the socket at once when online."""
        self.unacked[message.seq] = message
        if self.online and self._ws is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_bytes(p.encode(message))

    def sample(self) -> p.TagsUpdated:
        if not self._values:
            self._values = [self._rng.uniform(0, 100) for _ in range(self.tags)]
        t = time.time()
        values = []
        for i in range(self.tags):
            self._values[i] += self._rng.gauss(0, 0.05)
            values.append(p.TagValue(name=f"T{i:03d}", value=round(self._values[i], 4), tick=t))
        return p.TagsUpdated(seq=self.next_seq(), time=t, run_id=self.run_id, tags=values)

    async def start_run(self) -> None:
        now = time.time()
        await self.emit(
            p.RunStarted(
                seq=self.next_seq(), time=now, run_id=self.run_id, started=now, method_version=1
            )
        )

    async def stop_run(self) -> None:
        now = time.time()
        await self.emit(
            p.RunStopped(
                seq=self.next_seq(), time=now, run_id=self.run_id, stopped=now, reason="stop"
            )
        )

    # --- the link -------------------------------------------------------------------------------

    async def _run(self, http: aiohttp.ClientSession) -> None:
        while True:
            try:
                await self._connect_once(http)
            except (aiohttp.ClientError, OSError, TimeoutError, p.ProtocolError):
                pass
            except Exception as exc:  # whatever it was, an engine reconnects: count, retry
                self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            self.online = False
            self._ws = None
            delay = POLICY.backoff(self._attempt, self._rng.random())
            self._attempt += 1
            self.url_index = (self.url_index + 1) % len(self.urls)  # EngineLink._fail_over
            await asyncio.sleep(delay)

    async def _connect_once(self, http: aiohttp.ClientSession) -> None:
        async with asyncio.timeout(5.0):
            ws = await http.ws_connect(
                f"{self.url}/engine/ws",
                headers={"Authorization": f"Bearer {self.token}"},
                max_msg_size=0,
                heartbeat=None,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),  # as EngineLink
            )
        self._ws = ws
        try:
            await ws.send_bytes(p.encode(self._registration()))
            async with asyncio.timeout(15.0):
                first = await ws.receive()
            frame = first.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)
            registered = p.decode(first.data) if frame else None
            if not isinstance(registered, p.Registered):
                return
            self._on_registered(registered.last_seq)
            await self._resend(registered.last_seq + 1)
            self.online = True
            async for msg in ws:
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                await self._on_frame(ws, p.decode(msg.data))
        finally:
            self.online = False
            await ws.close()

    def _registration(self) -> p.RegisterEngine:
        computer, _, name = self.engine_id.partition("/")
        return p.RegisterEngine(
            engine_id=self.engine_id,
            computer_name=computer,
            uod_name=name,
            session_id=self._session_id,
            engine_version="bench",
            protocol_version=p.PROTOCOL_VERSION,
            uod=uod(self.tags),
            uod_hash="",
            method_hash="",
            clock=time.time(),
            last_seq=self.seq,
        )

    def _on_registered(self, last_seq: int) -> None:
        self.registered_at = time.monotonic()
        self.registered_url = self.url
        self.connections += 1
        self._attempt = 0
        self._ack(last_seq)

    def _ack(self, seq: int) -> None:
        self.acked = max(self.acked, seq)
        while self.unacked and next(iter(self.unacked)) <= seq:
            self.unacked.popitem(last=False)

    async def _resend(self, from_seq: int) -> None:
        """Rules 6 and 8: in order, TagsUpdated marked historical (never shown as live)."""
        assert self._ws is not None
        for seq, message in list(self.unacked.items()):
            if seq < from_seq:
                continue
            if isinstance(message, p.TagsUpdated):
                tags = [t.model_copy(update={"historical": True}) for t in message.tags]
                message = message.model_copy(update={"tags": tags})
            await self._ws.send_bytes(p.encode(message))

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, message: object) -> None:
        if isinstance(message, p.Ack):
            self._ack(message.seq)
        elif isinstance(message, p.Ping):
            await ws.send_bytes(p.encode(p.CommandResult(id=message.id, ok=True, seq=self.seq)))
        elif isinstance(message, p.ResendRequest):
            await self._resend(message.from_seq)
        elif isinstance(message, p.ProtocolErrorMessage) and message.fatal:
            raise p.ProtocolError(message.message)


async def produce(engines: list[SiteEngine], rate: float, stop: asyncio.Event) -> None:
    """Each engine emits one sample of all its tags every 1/rate s, phases spread evenly."""
    interval = 1.0 / rate

    async def one(index: int, engine: SiteEngine) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval * index / max(1, len(engines))
        while not stop.is_set():
            delay = next_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                if stop.is_set():
                    return
            next_at += interval
            await engine.emit(engine.sample())

    await asyncio.gather(*(one(i, e) for i, e in enumerate(engines)))


def freshness_of(frame: str, received: float, out: list[float]) -> None:
    """A /ws tags change: now minus the scan time it carries (same machine, same clock)."""
    data = json.loads(frame)
    if data.get("kind") != "change" or not str(data.get("topic", "")).endswith("/tags"):
        return
    raw = [t.get("tick") for t in data.get("data") or [] if isinstance(t, dict)]
    ticks = [t for t in raw if isinstance(t, int | float)]
    if ticks:  # one figure per frame (an engine's scan), not one per tag
        out.append(received - max(ticks))
