"""A real aggregator (`setpoint-aggregator serve`) and a real engine (`setpoint-engine run
--aggregator`, the chromatography example, not started) for run_model over /ws and HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.examples.processes import stop
from tests.examples.test_with_aggregator import BIN, ROOT, _get, _wait, served_aggregator


@dataclass
class Live:
    http: str
    bearer: str
    unit: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("model_run")
    engine: subprocess.Popen[str] | None = None
    with served_aggregator(tmp / "agg", "ann", "operator") as (port, token, bearer):
        http = f"http://127.0.0.1:{port}"
        try:
            engine = subprocess.Popen(
                [
                    str(BIN / "setpoint-engine"),
                    "run",
                    "--uod",
                    "uod_examples/chromatography.py",
                    "--method",
                    "uod_examples/chromatography.pcode",
                    "--aggregator",
                    f"ws://127.0.0.1:{port}",
                    "--data-dir",
                    str(tmp / "engine"),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
                env={**os.environ, "SETPOINT_ENGINE_TOKEN": token},
            )
            units = _wait(lambda: [u for u in _get(f"{http}/api/units", bearer) if u["online"]])
            yield Live(http, bearer, units[0]["id"])
        finally:
            if engine is not None:
                stop(engine, timeout=15)


class Ws:
    """A /ws client keeping every frame, answering pings."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.session, self.ws = session, ws
        self.frames: list[dict[str, Any]] = []
        self.stamps: list[float] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, live: Live) -> Ws:
        session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {live.bearer}"}
        ws = await session.ws_connect(live.http.replace("http", "ws") + "/ws", headers=headers)
        return cls(session, ws)

    async def _read(self) -> None:
        async for msg in self.ws:
            frame = json.loads(msg.data)
            self.frames.append(frame)
            self.stamps.append(time.monotonic())
            if frame.get("type") == "ping":
                await self.ws.send_json({"action": "pong"})

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_json(message)

    def of(self, task: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == "task" and f.get("id") == task]

    async def until(self, check: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := check()):
            assert time.monotonic() < deadline, f"not reached; last frames {self.frames[-3:]}"
            await asyncio.sleep(0.01)
        return result

    async def end(self, task: str, timeout: float = 30.0) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            done = [
                f for f in self.of(task) if f["status"] in ("finished", "exception", "interrupted")
            ]
            return done[0] if done else None

        frame: dict[str, Any] = await self.until(ended, timeout)
        return frame

    async def close(self) -> None:
        await self.ws.close()
        await self._reader
        await self.session.close()
