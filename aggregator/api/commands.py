"""Requests to a connected engine and their correlated answers (protocol rule 9).

The HTTP API and /ws both ask engines to do things (control, inject, edit the method, cancel or
force a line). Each request goes out over the engine's own connection with a fresh correlation
id and waits, with a timeout, for the `CommandResult` carrying that id. The engine endpoint hands
every CommandResult to `resolve` (via the live hub), so this module needs nothing from the
endpoint but its `send`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import CommandResult

RESULT_TOPIC_SUFFIX = "/command_result"
"""Live-hub topic `unit/<id>/command_result` on which the endpoint publishes CommandResults."""


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
    _pending: dict[str, tuple[str, asyncio.Future[CommandResult]]] = field(default_factory=dict)

    async def request(
        self, engine_id: str, build: Callable[[str], Any], *, timeout: float | None = None
    ) -> CommandResult:
        """Send `build(correlation_id)` to the engine and return its successful result."""
        sender = self.connection(engine_id)
        if sender is None:
            raise EngineOffline(f"unit {engine_id!r} is offline")
        correlation = uuid.uuid4().hex
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._pending[correlation] = (engine_id, future)
        try:
            sender.send(build(correlation))
            result = await asyncio.wait_for(future, timeout or self.timeout)
        except TimeoutError:
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
        if entry is None or entry[0] != engine_id:
            return False
        future = entry[1]
        if not future.done():
            future.set_result(result)
        return True

    def engine_gone(self, engine_id: str) -> None:
        """The connection closed: nobody will answer the requests still waiting."""
        for correlation, (owner, future) in list(self._pending.items()):
            if owner == engine_id and not future.done():
                future.set_exception(EngineOffline(f"unit {engine_id!r} went offline"))
                self._pending.pop(correlation, None)

    @property
    def waiting(self) -> int:
        return len(self._pending)
