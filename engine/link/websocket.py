"""The link's websocket client: the `websockets` library, behind the few calls the link makes.

Why not aiohttp's client (which the aggregator serves with): the engine needs one outgoing
websocket, and importing aiohttp cost ~0.1 s of CPU and ~8 MB at every engine start (it builds
two TLS contexts with the system CA store at import, even for ws://), a third of the start's CPU
and the largest share of the engine's memory (issue 15 item 3). `websockets` (a sans-I/O
protocol core with an asyncio shell) costs about a third of that and loads TLS only for wss://.
The link keeps what it had: permessage-deflate with context takeover when the server accepts it,
a size limit per message, its own heartbeats (the library's keepalive pings are off: rule 5
says who watches the link), and a refused upgrade's HTTP status, by which the link tells a bad
token from a wrong address.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as _connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.protocol import State


class MsgType(IntEnum):
    """What `async for message in ws` yields (the subset of aiohttp's WSMsgType the link uses)."""

    TEXT = 1
    BINARY = 2
    ERROR = 258


@dataclass(frozen=True)
class Message:
    type: MsgType
    data: Any


class HandshakeError(Exception):
    """The server answered the upgrade with something other than 101 (401, 403, 503, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}, message={message!r}")
        self.status = status


class WebSocketError(Exception):
    """The upgrade failed in a way that is not an HTTP status (a peer that is no websocket
    server, a broken answer)."""


async def connect(
    url: str,
    *,
    headers: dict[str, str],
    max_msg_size: int,
    compress: bool = True,
    close_timeout: float = 2.0,
) -> WebSocket:
    """Open the connection (TLS for wss://) and upgrade it; HandshakeError on refusal.
    The caller bounds the whole attempt (the link's connect timeout)."""
    deflate = [ClientPerMessageDeflateFactory(compress_settings={"memLevel": 8})]
    try:
        conn = await _connect(
            url,
            create_connection=_OneWriteConnection,
            additional_headers=headers,
            max_size=max_msg_size,
            compression=None,
            extensions=deflate if compress else None,
            close_timeout=close_timeout,
            open_timeout=None,
            ping_interval=None,
            proxy=None,
            user_agent_header=None,
        )
    except InvalidStatus as exc:
        response = exc.response
        raise HandshakeError(response.status_code, response.reason_phrase) from None
    except InvalidHandshake as exc:
        raise WebSocketError(str(exc)) from exc
    return WebSocket(conn)


class _OneWriteConnection(ClientConnection):
    """The library's connection, writing the frames queued together in one write.

    The link sends a sample and the run-log lines of the same scan back to back
    (`WebSocket.send_strs`); in one TCP segment the aggregator reads them in one go, stores them
    in one commit and answers one Ack, where two writes had it commit and acknowledge each
    (its writer's lone-frame rule), a wake-up and an Ack more a second on both sides (issue 15
    item 3). The frames are the same bytes in the same order."""

    def send_data(self) -> None:
        chunks = self.protocol.data_to_send()
        data = b"".join(chunks)  # an empty chunk (the end of the stream) adds nothing
        if data:
            self.transport.write(data)
        if not all(chunks):  # after the closing handshake: end the stream as the library does
            if self.transport.can_write_eof():
                with contextlib.suppress(Exception):  # as the library: OSError is plausible
                    self.transport.write_eof()
            else:
                self.transport.close()


class WebSocket:
    """The client end of one upgraded connection."""

    def __init__(self, conn: ClientConnection) -> None:
        self._conn = conn
        self._exception: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self._conn.state is not State.OPEN

    def exception(self) -> BaseException | None:
        return self._exception

    async def send_str(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("the websocket is closed")
        try:
            await self._conn.send(text)
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"the websocket closed: {exc}") from None

    async def send_strs(self, texts: Sequence[str]) -> None:
        """Several text messages, in order, in one write (see `_OneWriteConnection`)."""
        if self.closed:
            raise ConnectionResetError("the websocket is closed")
        try:
            async with self._conn.send_context():  # the library's own pattern for a send
                for text in texts:
                    self._conn.protocol.send_text(text.encode())
        except ConnectionClosed as exc:
            raise ConnectionResetError(f"the websocket closed: {exc}") from None

    async def close(self, code: int = 1000) -> None:
        """The closing handshake: our Close, then the peer's within the close timeout."""
        await self._conn.close(code)

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> Message:
        try:
            data = await self._conn.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is None and exc.sent is None:
                raise StopAsyncIteration from None  # the peer went away: like a close
            if exc.rcvd is not None and exc.rcvd.code in (1000, 1001):
                raise StopAsyncIteration from None
            self._exception = exc
            return Message(MsgType.ERROR, None)
        if isinstance(data, str):
            return Message(MsgType.TEXT, data)
        return Message(MsgType.BINARY, bytes(data))
