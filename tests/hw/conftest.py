"""Real peers for the hardware tests: an in-process pymodbus server on a free loopback port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from pymodbus.server import ModbusTcpServer

from engine.hw.base import ScalarValue
from engine.simdev.modbus_server import serve_tcp, stop_server
from engine.simdev.store import RegisterStore
from tests.net import free_port


def number(value: ScalarValue | None) -> float:
    assert not isinstance(value, str), value
    return value or 0


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll a condition; fail with `what` if it does not hold within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.005)


class Peer:
    """A Modbus TCP device that a test can stop and restart on the same port."""

    def __init__(self, store: RegisterStore, port: int) -> None:
        self.store = store
        self.port = port
        self.server: ModbusTcpServer | None = None

    async def start(self) -> None:
        self.server = await serve_tcp(self.store, "127.0.0.1", self.port)

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await stop_server(server)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer(RegisterStore(device_ids=(1, 2)), free_port())
    await p.start()
    try:
        yield p
    finally:
        await p.stop()
