"""Requests to a connected engine and their correlated answers (protocol rule 9).

The HTTP API and /ws both ask engines to do things (control, inject, edit the method, cancel or
force a line). Each request goes out over the engine's own connection with a fresh correlation
id and waits, with a timeout, for the `CommandResult` carrying that id. The engine endpoint hands
every CommandResult to `resolve` (via the live hub), so this module needs nothing from the
endpoint but its `send`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import CommandResult

log = logging.getLogger(__name__)

RESULT_TOPIC_SUFFIX = "/command_result"
"""Live-hub topic `unit/<id>/command_result` on which the endpoint publishes CommandResults."""


LATE_LIMIT = 1000
"""Timed-out requests whose late answer is still recognised (the oldest are forgotten)."""

Late = Callable[[CommandResult], Coroutine[Any, Any, None]]
Remote = Callable[[str, Any, float], Coroutine[Any, Any, CommandResult]]
"""How a request for a unit held by another node of the site gets there (aggregator/cluster)."""
"""What to do with the answer to a request that timed out, should it come after all."""


class Sender(Protocol):
    def send(self, message: Any) -> None: ...


class EngineOffline(Exception):
    """No connection to the unit right now (HTTP 503)."""


class EngineTimeout(Exception):
    """The engine did not answer in time (HTTP 503: it may be overloaded or just gone)."""


class EngineRefused(Exception):
    """The engine answered with ok=False; the message is the engine's own explanation."""

    def __init__(self, error: str, data: Any = None) -> None:
        super().__init__(error)
        self.error = error
        self.data = data


@dataclass
class EngineCommands:
    """Pending requests by correlation id; one per app."""

    connection: Callable[[str], Sender | None]
    timeout: float = 10.0
    remote: Remote | None = None
    _pending: dict[str, tuple[str, asyncio.Future[CommandResult]]] = field(default_factory=dict)
    _late: dict[str, tuple[str, Late]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    late_answers: int = 0
    """Answers recognised after their request had timed out, once handled."""

    async def request(
        self,
        engine_id: str,
        build: Callable[[str], Any],
        *,
        timeout: float | None = None,
        on_late: Late | None = None,
    ) -> CommandResult:
        """Send `build(correlation_id)` to the engine and return its successful result. After a
        timeout, an answer that still comes is handed to `on_late` (for a request whose effect
        the aggregator must not miss, such as a method edit)."""
        sender = self.connection(engine_id)
        if sender is None and self.remote is not None:
            result = await self.remote(engine_id, build(uuid.uuid4().hex), timeout or self.timeout)
            if not result.ok:
                raise EngineRefused(result.error or "refused by the engine", result.data)
            return result
        if sender is None:
            raise EngineOffline(f"unit {engine_id!r} is offline")
        correlation = uuid.uuid4().hex
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = (engine_id, future)
        try:
            sender.send(build(correlation))
            result = await asyncio.wait_for(future, timeout or self.timeout)
        except TimeoutError:
            if on_late is not None:
                self._late[correlation] = (engine_id, on_late)
                while len(self._late) > LATE_LIMIT:
                    del self._late[next(iter(self._late))]
            raise EngineTimeout(
                f"unit {engine_id!r} did not answer within {timeout or self.timeout:g} s"
            ) from None
        finally:
            self._pending.pop(correlation, None)
        if not result.ok:
            raise EngineRefused(result.error or "refused by the engine", result.data)
        return result

    def resolve(self, engine_id: str, result: CommandResult) -> bool:
        """Hand an engine's CommandResult to whoever waits for it; False if nobody does."""
        entry = self._pending.get(result.id)
        if entry is None:
            return self._resolve_late(engine_id, result)
        if entry[0] != engine_id:
            return False
        future = entry[1]
        if not future.done():
            future.set_result(result)
        return True

    def _resolve_late(self, engine_id: str, result: CommandResult) -> bool:
        late = self._late.get(result.id)
        if late is None or late[0] != engine_id:
            return False
        del self._late[result.id]
        task = asyncio.get_running_loop().create_task(late[1](result))
        self._tasks.add(task)
        task.add_done_callback(self._late_done)
        return True

    def _late_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.late_answers += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("handling a late answer failed", exc_info=task.exception())

    def engine_gone(self, engine_id: str) -> None:
        """The connection closed: nobody will answer the requests still waiting."""
        for correlation, (owner, future) in list(self._pending.items()):
            if owner == engine_id and not future.done():
                future.set_exception(EngineOffline(f"unit {engine_id!r} went offline"))
                self._pending.pop(correlation, None)

    @property
    def waiting(self) -> int:
        return len(self._pending)
