"""The outbox of notifications: a bounded queue, a few senders, retries with back-off.

Whoever finds that someone should be notified only calls `submit`, which never waits: ingest and
the live bridge must not slow down because a mail server is slow or away. A delivery that fails
is tried again later (exponential back-off) without holding a sender; one that fails for good,
or finds the queue full, is handed to `on_failure`, which logs it and keeps it for admins: a
notification is never lost silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

log = logging.getLogger(__name__)


class Permanent(Exception):
    """Retrying cannot help (the recipient refused it, the subscription is gone)."""


@dataclass(frozen=True)
class Delivery:
    """One message to one recipient on one channel; `send` does it (raising on failure)."""

    channel: str
    user: str
    recipient: str
    subject: str
    send: Callable[[], Awaitable[None]] = field(compare=False, repr=False)
    attempts: int = 0


FailureHook = Callable[[Delivery, str], None]


class Dispatcher:
    def __init__(
        self,
        on_failure: FailureHook,
        *,
        max_queued: int = 1000,
        senders: int = 2,
        max_attempts: int = 5,
        backoff: float = 2.0,
        max_backoff: float = 300.0,
    ) -> None:
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(max_queued)
        self._on_failure = on_failure
        self._senders = senders
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()
        self.sent = 0
        self.failed = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = 0

    def start(self) -> None:
        for n in range(self._senders):
            self._tasks.append(asyncio.create_task(self._run(), name=f"notify-sender-{n}"))

    async def stop(self) -> None:
        for handle in self._retries:
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        pending = []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for delivery in pending:
            self._fail(delivery, "the aggregator stopped before it was sent")

    def submit(self, delivery: Delivery) -> bool:
        """Queue a delivery; False (and a recorded failure) when the queue is full."""
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self._fail(delivery, f"the notification queue is full ({self._queue.maxsize} waiting)")
            return False
        self._idle.clear()
        return True

    @property
    def waiting(self) -> int:
        return self._queue.qsize() + len(self._retries) + self._busy

    async def drained(self) -> None:
        """Until nothing is queued, being sent or waiting for a retry (tests, shutdown)."""
        while self.waiting:
            self._idle.clear()
            await self._idle.wait()

    def _settle(self) -> None:
        if not self.waiting:
            self._idle.set()

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            self._busy += 1
            try:
                await self._attempt(delivery)
            finally:
                self._busy -= 1
                self._settle()

    async def _attempt(self, delivery: Delivery) -> None:
        attempt = replace(delivery, attempts=delivery.attempts + 1)
        try:
            await attempt.send()
        except Permanent as exc:
            self._fail(attempt, str(exc))
            return
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if attempt.attempts >= self.max_attempts:
                self._fail(attempt, reason)
                return
            delay = min(self.max_backoff, self.backoff * 2 ** (attempt.attempts - 1))
            log.warning(
                "notification %s to %s failed (attempt %d, retry in %.0f s): %s",
                attempt.channel,
                attempt.recipient,
                attempt.attempts,
                delay,
                reason,
            )
            self._retry_later(attempt, delay)
            return
        self.sent += 1

    def _retry_later(self, delivery: Delivery, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._retries.discard(handle)
            try:
                self._queue.put_nowait(delivery)
            except asyncio.QueueFull:
                self._fail(delivery, "the notification queue is full; the retry was dropped")
            self._settle()

        handle = loop.call_later(delay, again)
        self._retries.add(handle)

    def _fail(self, delivery: Delivery, reason: str) -> None:
        self.failed += 1
        log.error(
            "notification %s to %s (%s) not delivered after %d attempt(s): %s",
            delivery.channel,
            delivery.recipient,
            delivery.subject,
            delivery.attempts,
            reason,
        )
        try:
            self._on_failure(delivery, reason)
        except Exception:
            log.exception("recording a failed notification failed")
