"""A real aggregator on a free loopback port and a raw-protocol engine client for the tests.

The client speaks protocol frames directly (protocol.encode/decode) so that these tests pin the
aggregator's side of the contract without depending on the engine's link code."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

import protocol as p
from aggregator.context import CONTEXT_KEY, AppContext
from aggregator.security import new_token, token_hash

UOD = p.UodDescription(
    name="Chromatography",
    tags=[
        p.TagDescription(name="FT01", unit="L/h", kind="reading", direction="input"),
        p.TagDescription(name="PT01", unit="bar", kind="reading", direction="input"),
        p.TagDescription(name="Inlet", kind="choice", direction="output", choices=["VA01", "VA02"]),
    ],
)


async def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> None:
    """Wait for a condition; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


class Aggregator:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.runner = web.AppRunner(app, shutdown_timeout=2.0)
        self.port = 0
        self.token = ""
        self.username = ""
        self.password = ""
        self._engine_tokens: dict[str, str] = {}

    def engine_token(self, engine_id: str) -> str:
        """A token for this engine id: `token` for the first engine that asks, then one new
        token per engine id, as a token may register one engine id only (rule 1)."""
        token = self._engine_tokens.get(engine_id)
        if token is None:
            if self.token and self.token not in self._engine_tokens.values():
                token = self.token
            else:
                token = new_token()
                self.ctx.storage.create_engine_token(
                    "test-" + uuid.uuid4().hex[:8], token_hash(token), engine_id
                )
            self._engine_tokens[engine_id] = token
        return token

    @property
    def ctx(self) -> AppContext:
        return self.app[CONTEXT_KEY]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def login(self, session: aiohttp.ClientSession) -> dict[str, str]:
        async with session.post(
            f"{self.url}/api/auth/login",
            json={"username": self.username, "password": self.password},
        ) as response:
            assert response.status == 200, await response.text()
            token = (await response.json())["token"]
        return {"Authorization": f"Bearer {token}"}


def register_frame(
    engine_id: str,
    session_id: str | None = None,
    *,
    version: str = "1.0",
    clock: float | None = None,
) -> p.RegisterEngine:
    return p.RegisterEngine(
        engine_id=engine_id,
        computer_name=engine_id.split("/")[0],
        uod_name="Chromatography",
        session_id=session_id or uuid.uuid4().hex,
        engine_version="0.1.0",
        protocol_version=version,
        uod=UOD,
        uod_hash="uod-hash",
        method_hash="method-hash",
        clock=time.time() if clock is None else clock,
    )


class Endpoint(Protocol):
    """Where an engine connects: an in-process Aggregator or a `serve` subprocess."""

    @property
    def url(self) -> str: ...

    token: str


class RawEngine:
    """One websocket to /engine/ws; frames in and out are protocol models."""

    def __init__(self, agg: Endpoint, engine_id: str | None = None) -> None:
        self.agg = agg
        self.engine_id = engine_id or f"pc-{uuid.uuid4().hex[:8]}/Chromatography"
        self.http = aiohttp.ClientSession()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.received: list[p.Message] = []
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, token: str | None = None) -> None:
        self.closed.clear()
        self.received = []
        self.ws = await self.http.ws_connect(
            f"{self.agg.url}/engine/ws",
            headers={"Authorization": f"Bearer {token or self._token()}"},
            autoping=True,
        )
        self._reader = asyncio.create_task(self._read())

    def _token(self) -> str:
        engine_token = getattr(self.agg, "engine_token", None)
        return engine_token(self.engine_id) if engine_token is not None else self.agg.token

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self.received.append(p.decode(msg.data))
        self.closed.set()

    async def register(self, session_id: str | None = None, **kw: Any) -> p.Registered:
        if self.ws is None or self.ws.closed:
            await self.connect()
        await self.send(register_frame(self.engine_id, session_id, **kw))
        registered = await self.wait_for(p.Registered)
        assert isinstance(registered, p.Registered)
        return registered

    async def send(self, message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(p.encode(message))

    async def send_raw(self, data: bytes | str) -> None:
        assert self.ws is not None
        if isinstance(data, str):
            await self.ws.send_str(data)
        else:
            await self.ws.send_bytes(data)

    def of_type(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.received if isinstance(m, kind)]

    async def wait_for(
        self,
        kind: type[Any],
        predicate: Callable[[Any], bool] = lambda m: True,
        timeout: float = 10.0,
    ) -> Any:
        found: list[Any] = []

        def check() -> bool:
            found[:] = [m for m in self.received if isinstance(m, kind) and predicate(m)]
            return bool(found)

        await until(check, timeout, f"{kind.__name__} from the aggregator")
        return found[0]

    async def wait_ack(self, seq: int, timeout: float = 10.0) -> None:
        await self.wait_for(p.Ack, lambda a: a.seq >= seq, timeout)

    def acked(self) -> int:
        return max((m.seq for m in self.of_type(p.Ack)), default=0)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader

    async def aclose(self) -> None:
        await self.close()
        await self.http.close()


def tags(
    seq: int,
    t: float,
    run_id: str | None = "run",
    *,
    sample: bool = True,
    historical: bool = False,
    **values: Any,
) -> p.TagsUpdated:
    return p.TagsUpdated(
        seq=seq,
        time=t,
        run_id=run_id,
        sample=sample,
        tags=[
            p.TagValue(name=name, value=value, tick=t, historical=historical)
            for name, value in (values or {"FT01": float(seq)}).items()
        ],
    )
