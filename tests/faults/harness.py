"""Fault-test harness: a real aggregator process, a loopback TCP proxy that can cut the network,
a scripted engine (EngineLink + fake engine emitting numbered samples) and the HTTP API checks.

Every process is started here and stopped by PID; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from engine.link.client import EngineLink
from engine.link.machine import LinkPolicy
from protocol.messages import RunStarted, RunStopped, TagsUpdated
from protocol.models import TagValue
from tests.link.fake_aggregator import free_port, until
from tests.link.helpers import FakeControl

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AGGREGATOR = str(BIN / "setpoint-aggregator")
ADMIN = ("admin", "fault-test-password")
HEARTBEAT = 0.5
"""Heartbeat of both sides in the fault tests: an outage is noticed within 1.5 s."""


def prepare_template(directory: Path) -> str:
    """A data directory with an admin user and an engine token; returns the token.

    Done once per session and copied per test: the CLI takes ~1.5 s per call.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run(
        [
            AGGREGATOR,
            "user",
            "add",
            ADMIN[0],
            "--role",
            "admin",
            "--password-stdin",
            "--data-dir",
            str(directory),
        ],
        input=ADMIN[1] + "\n",
        text=True,
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    )
    out = subprocess.run(
        [AGGREGATOR, "engine-token", "create", "fault-engine", "--data-dir", str(directory)],
        text=True,
        check=True,
        capture_output=True,
        env=env,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[0]


class AggregatorProcess:
    """`setpoint-aggregator serve` on a fixed port, so that a restart keeps its address.

    `serve_args` are added to `serve`'s command line (e.g. `--database`, `--nats`, `--node`);
    `heartbeat` is its `--heartbeat` (None: serve's default).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        serve_args: Sequence[str] = (),
        heartbeat: float | None = HEARTBEAT,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.serve_args = tuple(serve_args)
        self.heartbeat = heartbeat
        self.proc: subprocess.Popen[str] | None = None
        self.log_path = data_dir / "aggregator.log"
        self.starts = 0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None
        self.starts += 1
        log = open(self.log_path, "a")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                AGGREGATOR,
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                *(() if self.heartbeat is None else ("--heartbeat", str(self.heartbeat))),
                *self.serve_args,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        problem = self._wait_listening(timeout)
        if problem is not None:
            self.kill()
            raise AssertionError(
                f"aggregator did not start ({problem}): {self.log_path.read_text()[-2000:]}"
            )

    def _wait_listening(self, timeout: float) -> str | None:
        """None once serve prints "listening on"; else why not. Its stdout is read in a thread,
        so a silent process is killed by PID at the deadline instead of blocking a readline."""
        assert self.proc is not None and self.proc.stdout is not None
        proc, stdout = self.proc, self.proc.stdout
        listening = threading.Event()

        def read() -> None:
            for line in stdout:
                if "listening on" in line:
                    listening.set()
                    return

        reader = threading.Thread(target=read, name=f"aggregator-{self.port}-stdout", daemon=True)
        reader.start()
        reader.join(timeout)
        silent = reader.is_alive()
        if listening.is_set():
            return None
        if not silent:
            return "its stdout closed before it printed 'listening on'"
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        reader.join(10)
        return f"no 'listening on' within {timeout} s; killed by PID {proc.pid}"

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, like a crash or a power cut of the server."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def terminate(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None


@dataclass
class _Pair:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class TcpProxy:
    """Loopback TCP proxy between engine and aggregator that can cut the network.

    cut("reset"): every connection is closed and new ones are refused (a crashed switch port).
    cut("blackhole"): connections stay open but nothing passes, and new connections are
    accepted but never reach the aggregator (an unplugged cable): only heartbeats notice it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.mode: str | None = None
        self.connections = 0
        self._pairs: list[_Pair] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop_all()

    async def cut(self, mode: str = "reset") -> None:
        assert mode in ("reset", "blackhole")
        self.mode = mode
        if mode == "reset":
            await self._drop_all()

    async def restore(self) -> None:
        """Network back: connections that lived through a blackhole are dead, as after a real
        outage long enough for both sides to give up."""
        await self._drop_all()
        self.mode = None

    async def _drop_all(self) -> None:
        pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for task in pair.tasks:
                task.cancel()
            for writer in (pair.client, pair.upstream):
                if writer is not None:
                    writer.transport.abort()
            await asyncio.gather(*pair.tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            writer.transport.abort()
            return
        self.connections += 1
        if self.mode == "blackhole":
            pair = _Pair(writer, None)
            pair.tasks.append(asyncio.create_task(self._swallow(reader)))
            self._pairs.append(pair)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair(writer, up_writer)
        pair.tasks.append(asyncio.create_task(self._pipe(reader, up_writer)))
        pair.tasks.append(asyncio.create_task(self._pipe(up_reader, writer)))
        self._pairs.append(pair)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "blackhole":
                    continue  # the cable is out: bytes go nowhere
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if self.mode != "blackhole":
                writer.transport.abort()


def sample(n: int, run_id: str, t0: float, period: float) -> dict[str, Any]:
    # Whole milliseconds: the aggregator stores times to the microsecond, and a tick that rounds
    # down loses the first sample of the run from exports (see test_export_precision.py).
    tick = round(t0 + n * period, 3)
    return {"time": tick, "run_id": run_id, "tags": [TagValue(name="Counter", value=n, tick=tick)]}


class ScriptedEngine:
    """A stand-in for the engine: one run of numbered `Counter` samples at a fixed rate."""

    def __init__(
        self, url: str | list[str], token: str, data_dir: Path, rate: float = 20.0
    ) -> None:
        self.control = FakeControl()
        self.link = EngineLink(
            url,
            token,
            data_dir,
            self.control,
            policy=LinkPolicy(
                heartbeat_interval=HEARTBEAT,
                backoff_initial=0.1,
                backoff_max=1.0,
                resend_grace=1.0,
            ),
            connect_timeout=2.0,
        )
        self.period = 1.0 / rate
        self.produced = 0
        self.run_id = ""
        self.t0 = 0.0

    async def start(self, run_id: str) -> None:
        await self.link.start()
        self.run_id = run_id
        self.t0 = round(time.time(), 3)
        self.link.emit(
            RunStarted,
            time=self.t0,
            run_id=run_id,
            started=self.t0,
            method_version=0,
            user="fault-test",
        )

    async def produce_for(self, seconds: float) -> None:
        """Emit samples at the engine's scan rate for `seconds` of wall time."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        next_at = loop.time()
        while loop.time() < end:
            self.produced += 1
            self.link.emit(TagsUpdated, **sample(self.produced, self.run_id, self.t0, self.period))
            next_at += self.period
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def stop_run(self, flush_timeout: float = 60.0) -> None:
        stopped = self.t0 + (self.produced + 1) * self.period
        self.link.emit(
            RunStopped,
            time=stopped,
            run_id=self.run_id,
            stopped=stopped,
            reason="stop",
            user="fault-test",
        )
        await self.link.stop(flush_timeout=flush_timeout)


class Api:
    """The aggregator's HTTP API as a script would use it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession()
        self.headers: dict[str, str] = {}

    async def login(self) -> None:
        async with self.session.post(
            f"{self.base}/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
        ) as resp:
            assert resp.status == 200, await resp.text()
            self.headers = {"Authorization": f"Bearer {(await resp.json())['token']}"}

    async def get(self, path: str) -> Any:
        async with self.session.get(f"{self.base}{path}", headers=self.headers) as resp:
            assert resp.status == 200, f"{path}: {resp.status} {await resp.text()}"
            return await resp.json()

    async def runs(self) -> list[dict[str, Any]]:
        return list((await self.get("/api/runs?limit=500"))["items"])

    async def run(self, run_id: str) -> dict[str, Any]:
        return dict(await self.get(f"/api/runs/{run_id}"))

    async def counter_values(self, run_id: str) -> list[Any]:
        """The `Counter` column of the run's CSV export, in row (time) order."""
        async with self.session.get(
            f"{self.base}/api/runs/{run_id}/csv", headers=self.headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            text = await resp.text()
        rows = list(csv.reader(io.StringIO(text)))
        rows = [row for row in rows if row and not row[0].startswith("#")]
        header, body = rows[0], rows[1:]
        column = header.index("Counter")
        return [int(float(row[column])) if row[column] != "" else None for row in body]

    async def close(self) -> None:
        await self.session.close()


async def assert_run_complete(
    api: Api, run_id: str, produced: int, *, closed_reason: str | None = "stop"
) -> dict[str, Any]:
    """Every sample 1..produced stored exactly once, in order; the run closed as expected."""
    detail = await api.run(run_id)
    values = await api.counter_values(run_id)
    missing = sorted(set(range(1, produced + 1)) - set(values))
    assert not missing, (
        f"{len(missing)} samples lost, first {missing[:10]}; stored count "
        f"{detail['sample_count']}, CSV starts {values[:5]}"
    )
    assert values == list(range(1, produced + 1)), "samples out of order or unexpected values"
    assert detail["sample_count"] == produced, (
        f"{detail['sample_count']} samples stored for {produced} produced: duplicates"
    )
    if closed_reason is not None:
        assert detail["stopped"] is not None, "the run was left open"
        assert detail["stop_reason"] == closed_reason
    problems = [
        e["message"]
        for e in detail["errors"]
        if "gap" in e["message"] or "integrity" in e["message"]
    ]
    assert not problems, f"the aggregator recorded link problems: {problems}"
    return detail


def copy_template(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


__all__ = [
    "AggregatorProcess",
    "Api",
    "ScriptedEngine",
    "TcpProxy",
    "assert_run_complete",
    "copy_template",
    "prepare_template",
    "until",
]
