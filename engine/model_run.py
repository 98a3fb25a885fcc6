"""A unit's method run on the unit's process model instead of its hardware (simulate, run_model).

`for_simulation` is the one place that decides which model a unit is simulated on, so the CLI's
`simulate` and the engine's run_model cannot disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import JsonValue

from engine.uod.definition import Uod
from engine.uod.simulation_builder import ADVICE


class NoProcessModel(Exception):
    """The unit names no process model; the message says what to add."""


def for_simulation(uod: Uod) -> Uod:
    """The unit with its process model in place of its hardware."""
    if uod.simulation_factory is None:
        raise NoProcessModel(_no_model(uod))
    return dataclasses.replace(uod, hardware_factory=uod.simulation_factory)


# ---- run_model: one child process per simulation, at most one at a time per engine ----------

KEEP_ALIVE = 0.5  # s: the longest the engine stays silent about a working simulation
# The child lowers its priority before it imports the engine (half of its CPU time is start-up),
# so that its start cannot delay the real unit's scan either.
CHILD = "import os; os.nice(10); from engine.model_run_core import main; main()"

Send = Callable[[str, str, dict[str, JsonValue]], None]
"""(request id, status, data): how the engine reports a simulation's progress (the link)."""


@dataclass
class _Request:
    id: str
    text: str
    speed: float | None
    limit: float | None


class ModelRuns:
    """The engine's simulations. Each runs in its own (spawned, lowered-priority) process so the
    real unit's scan is never slowed; one at a time, later ones wait as `pending`. A cancel
    kills the process at once and reports `interrupted` at once. Use on the event loop."""

    def __init__(self, uod: Uod, send: Send, *, max_pending: int = 16) -> None:
        self._uod = uod
        self._send = send
        self._max_pending = max_pending
        self._pending: deque[_Request] = deque()
        self._running: _Request | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> str | None:
        return self._running.id if self._running else None

    @property
    def pending(self) -> list[str]:
        return [r.id for r in self._pending]

    def submit(self, id: str, text: str, speed: float | None, limit: float | None) -> None:
        """Queues a simulation (call on the event loop); raises ValueError to refuse it."""
        if self._uod.simulation_factory is None:
            raise ValueError(_no_model(self._uod))
        known = {r.id for r in self._pending} | ({self._running.id} if self._running else set())
        if id in known:
            raise ValueError(f"a simulation {id!r} is already queued")
        if len(self._pending) >= self._max_pending:
            raise ValueError(f"{self._max_pending} simulations are already waiting; try later")
        self._loop = asyncio.get_running_loop()
        self._pending.append(_Request(id, text, speed, limit))
        self._send(id, "pending", {"position": len(self._pending) - (self._running is None)})
        self._next()

    def cancel(self, id: str) -> bool:
        """Ends a queued or running simulation as `interrupted`; False if it is not known."""
        for request in self._pending:
            if request.id == id:
                self._pending.remove(request)
                self._send(id, "interrupted", {"reason": "cancelled"})
                return True
        if self._running is not None and self._running.id == id:
            self._stop_child()
            self._running = None
            self._send(id, "interrupted", {"reason": "cancelled"})
            self._next()
            return True
        return False

    def close(self) -> None:
        for request in list(self._pending):
            self.cancel(request.id)
        if self._running is not None:
            self.cancel(self._running.id)

    def _next(self) -> None:
        if self._running is not None or not self._pending:
            return
        request = self._running = self._pending.popleft()
        for position, waiting in enumerate(self._pending):
            self._send(waiting.id, "pending", {"position": position + 1})
        self._send(request.id, "working", {"progress": 0.0, "intermediate": _empty()})
        assert self._loop is not None
        self._task = self._loop.create_task(self._run(request), name=f"model-{request.id}")

    async def _run(self, request: _Request) -> None:
        """The child (CHILD: engine/model_run_core.main), the request as JSON on stdin, one JSON
        report per line on stdout; a model that dies without a result is an exception."""
        job = {
            "uod": self._uod.filename,
            "text": request.text,
            "speed": request.speed,
            "limit": request.limit,
        }
        status = "exception"
        data: dict[str, JsonValue] = {"reason": "the model process ended without a result"}
        try:
            process = self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                CHILD,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                limit=2**26,
            )
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(job).encode())
            process.stdin.close()
            last: dict[str, JsonValue] = {"progress": 0.0, "intermediate": _empty()}
            while True:
                try:  # the child needs a second to start: say it still works meanwhile
                    line = await asyncio.wait_for(process.stdout.readline(), KEEP_ALIVE)
                except TimeoutError:
                    self._send(request.id, "working", last)
                    continue
                if not line:
                    break
                status, data = json.loads(line)
                if status != "working":
                    break
                last = data
                self._send(request.id, status, data)
            await process.wait()
        except Exception as exc:
            status, data = "exception", {"reason": f"the model process failed: {exc}"}
        self._process = None
        self._task = None
        self._running = None
        self._send(request.id, status, data)
        self._next()

    def _stop_child(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        self._process = None


def _no_model(uod: Uod) -> str:
    return f"unit {uod.name!r} has no process model to simulate on: {ADVICE}"


def _empty() -> dict[str, JsonValue]:
    return {"run_time": 0.0, "block": "", "marks": [], "watches": []}
