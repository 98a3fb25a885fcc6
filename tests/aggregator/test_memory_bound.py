"""Memory is bounded in bytes, not frames (issue 13 item 8).

An aggregator in its own process (tests/aggregator/memory_server.py, small limits) is flooded
with large frames three ways: engines sending beyond a sequence gap (held frames), /ws clients
that stop reading while a unit's run log grows (client queues), and /ws clients starting action
after action that the engine never answers (pending tasks). Each flood is several times its
limit; the process's peak RSS (VmHWM, reset before each flood) must stay within the limit plus
a generous margin, each peer gets the documented refusal, and the memory is returned once the
sockets close. glibc is told to mmap every large block, so freed frames leave the RSS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import protocol as p
from aggregator.db import create_db_engine, upgrade
from aggregator.security import hash_password, new_token, token_hash
from aggregator.store import Storage
from tests.aggregator.helpers import RawEngine, until
from tests.aggregator.memory_server import HELD_TOTAL, QUEUE_TOTAL, TASKS_TOTAL

MiB = 1024 * 1024
MARGIN = 40 * MiB
"""Allowance beyond the limits: frames being decoded and stored, SQLite's caches, allocator
slack. The floods below would each exceed limit + margin several times over without limits."""
BIG = 256 * 1024

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="needs Linux /proc for the RSS"
)


def _status(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match is not None
    return int(match.group(1)) * 1024


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    tokens: list[tuple[str, str]]
    """(engine id, token) per engine."""
    session: str
    token: str = ""

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        return _status(self.pid, "VmRSS")

    def peak(self) -> int:
        return _status(self.pid, "VmHWM")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    url = f"sqlite:///{tmp_path / 'setpoint.sqlite3'}"
    engine = create_db_engine(url)
    upgrade(engine)
    storage = Storage(engine)
    tokens = []
    for _ in range(9):
        engine_id = f"pc-{uuid.uuid4().hex[:6]}/Chromatography"
        token = new_token()
        storage.create_engine_token(engine_id.replace("/", "-"), token_hash(token), engine_id)
        tokens.append((engine_id, token))
    storage.add_user("flooder", "operator", hash_password("flooder password 1"))
    user = storage.user_by_name("flooder")
    assert user is not None
    session = new_token()
    storage.create_session(_field(user, "id"), token_hash(session), 3600.0)
    engine.dispose()
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.aggregator.memory_server", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"listening on (\S+)", line)
    if match is None:
        process.kill()
        raise AssertionError(f"the memory server did not start: {line!r}")
    try:
        yield Server(process, match.group(1), tokens, session)
    finally:
        process.kill()
        process.wait(10)


def _field(row: Any, name: str) -> Any:
    """A column of a store row, a dict or a typed row."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


async def _engine(server: Server, index: int) -> RawEngine:
    engine_id, token = server.tokens[index]
    server.token = token
    engine = RawEngine(server, engine_id)
    await engine.connect(token)
    await engine.register()
    return engine


def _big_tags(seq: int, size: int = BIG) -> p.TagsUpdated:
    return p.TagsUpdated(
        seq=seq,
        time=time.time(),
        run_id=None,
        sample=False,
        tags=[p.TagValue(name="FT01", value="x" * size, tick=time.time())],
    )


async def _send_until_closed(engine: RawEngine, frames: list[bytes]) -> int:
    sent = 0
    for frame in frames:
        if engine.closed.is_set():
            break
        with contextlib.suppress(ConnectionError, RuntimeError):
            await engine.send_raw(frame)
            sent += 1
    return sent


async def _flood_beyond_a_gap(server: Server) -> None:
    engines = [await _engine(server, i) for i in range(1, 7)]  # 0 warmed up
    frames = [p.encode(_big_tags(seq)) for seq in range(2, 82)]  # seq 1 never comes
    try:
        sent = await asyncio.gather(*(_send_until_closed(e, frames) for e in engines))
        for engine in engines:
            await until(engine.closed.is_set, 20.0, "the flooding engine's link to close")
            error = engine.of_type(p.ProtocolErrorMessage)[-1]
            assert error.rule == 7 and error.fatal and "too much held" in error.message
        # without the bound every frame would have been kept: 6 x 80 x 256 KiB
        assert sum(sent) * BIG > 3 * (HELD_TOTAL + MARGIN) or sum(sent) < 6 * 80
    finally:
        for engine in engines:
            await engine.aclose()


class StalledWs:
    """A /ws client that subscribes and then stops reading (a tiny receive buffer)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, topic: str) -> None:
        host, port = self.server.url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=4096)
        self.writer.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {self.server.session}\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        self.send({"action": "subscribe", "topic": topic})

    def send(self, message: dict[str, object]) -> None:
        assert self.writer is not None
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    async def close_code(self, timeout: float = 20.0) -> int | None:
        """Read everything the server sent until it closed: the close frame's code, if any."""
        assert self.reader is not None
        data = bytearray()
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(timeout):
                while chunk := await self.reader.read(1 << 20):
                    data += chunk
        return _last_close_code(bytes(data))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _last_close_code(data: bytes) -> int | None:
    at, code = 0, None
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length = struct.unpack(">H", data[at : at + 2])[0]
            at += 2
        elif length == 127:
            length = struct.unpack(">Q", data[at : at + 8])[0]
            at += 8
        if opcode == 0x8 and length >= 2:
            code = struct.unpack(">H", data[at : at + 2])[0]
        at += length
    return code


async def _flood_stalled_clients(server: Server) -> None:
    engine = await _engine(server, 7)
    now = time.time()
    run = p.RunStarted(
        seq=1, time=now, run_id="r-" + uuid.uuid4().hex[:6], started=now, method_version=0
    )
    await engine.send(run)
    await engine.wait_ack(1)
    topic = f"unit/{engine.engine_id}/runlog"
    clients = [StalledWs(server) for _ in range(4)]
    for client in clients:
        await client.open(topic)
    await asyncio.sleep(0)  # the subscriptions are read before the flood
    try:
        for seq in range(2, 162):  # 160 x 256 KiB of run log, never merged
            line = p.RunLogLine(
                id=f"l{seq}", text="y" * BIG, start=time.time(), state=p.LineState.COMPLETED
            )
            await engine.send(p.RunLog(seq=seq, time=time.time(), run_id=run.run_id, lines=[line]))
            if seq % 20 == 0:
                await engine.wait_ack(seq, timeout=30.0)
        await engine.wait_ack(161, timeout=30.0)
        codes = await asyncio.gather(*(c.close_code() for c in clients))
        # the server ended each stalled socket: with 4008 when the client read it in time
        assert all(code in (4008, None) for code in codes), codes
    finally:
        for client in clients:
            client.close()
        await engine.aclose()


async def _flood_pending_actions(server: Server) -> None:
    engine = await _engine(server, 8)  # never answers: every command waits
    pcode = "Mark: " + "z" * 60_000
    refused = 0
    async with aiohttp.ClientSession() as http:
        sockets = [
            await http.ws_connect(
                f"{server.url}/ws", headers={"Authorization": f"Bearer {server.session}"}
            )
            for _ in range(4)
        ]
        for ws in sockets:
            for i in range(120):
                await ws.send_json(
                    {"action": "command", "id": f"c{i}", "unit": engine.engine_id, "pcode": pcode}
                )
        for ws in sockets:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                msg = await ws.receive(timeout=20)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                if frame.get("type") == "error" and "too many actions pending" in frame["error"]:
                    refused += 1
                    break
        assert refused == len(sockets)
        for ws in sockets:
            await ws.close()
    await engine.aclose()


async def _within(server: Server, limit: int, what: str) -> None:
    grew = server.peak() - server.baseline  # type: ignore[attr-defined]
    assert grew < limit + MARGIN, (
        f"{what}: peak RSS grew by {grew / MiB:.0f} MiB, limit {limit / MiB:.0f} MiB "
        f"+ margin {MARGIN / MiB:.0f} MiB"
    )


@pytest.fixture
async def warmed(server: Server) -> AsyncIterator[Server]:
    """Every code path run once before the baseline, so lazy imports are not counted."""
    engine = await _engine(server, 0)
    await engine.send(_big_tags(1, 1000))
    await engine.wait_ack(1)
    await engine.aclose()
    server.baseline = server.rss()  # type: ignore[attr-defined]
    yield server


async def test_floods_stay_within_the_byte_limits(warmed: Server) -> None:
    server = warmed
    for flood, limit, what in (
        (_flood_beyond_a_gap, HELD_TOTAL, "frames held beyond a gap"),
        (_flood_stalled_clients, QUEUE_TOTAL, "stalled /ws clients"),
        (_flood_pending_actions, TASKS_TOTAL, "pending /ws actions"),
    ):
        _reset_peak(server.pid)
        await flood(server)
        await _within(server, limit, what)
    # everything closed: the memory comes back
    deadline = time.monotonic() + 15
    while server.rss() - server.baseline > MARGIN:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, (
            f"RSS still {(server.rss() - server.baseline) / MiB:.0f} MiB "  # type: ignore[attr-defined]
            "above the baseline after every socket closed"
        )
        await asyncio.sleep(0.2)
