"""Group commit: frames from every engine connection are stored in one transaction per short
window, and each connection is acked only after that transaction has committed (rule 5).

One writer thread owns the write side of the database: SQLite allows a single writer anyway,
and on PostgreSQL one transaction per window is cheaper than one per connection. When a batch
closes is decided by commit_window.CommitWindow (a pure policy, tested without a loop); this
module carries it out: one wake-up per batch on a quiet link, no timer per frame, no task per
wait (this loop runs for every frame of every engine).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aggregator.commit_window import CommitWindow
from aggregator.ingest_session import Store
from aggregator.store import BatchOp, BatchResult, Storage
from aggregator.store.fencing import Fenced
from aggregator.ticks import next_tick

log = logging.getLogger(__name__)

MAINTENANCE_PERIOD = 5.0
"""Seconds between the idle writer's looks for compaction work. Every batch already compacts
what it made due (`apply_and_maintain`); idle, what is left comes due by age (samples waiting
CHUNK_SECONDS, the digests' prune), checked every 10 s by storage anyway. A look every second
was a loop wake-up a second on an aggregator with one engine between its frames."""

T = TypeVar("T")


class BatchClient(Protocol):
    def on_committed(self, seq: int, items: int) -> None: ...

    def on_store_failed(self, error: BaseException, items: int) -> None: ...


@dataclass
class _Item:
    client: BatchClient
    ops: list[BatchOp]
    ack_seq: int
    submitted: float


_EARLIER_FAILED = RuntimeError("an earlier batch failed")


def _group(items: list[_Item]) -> list[tuple[BatchClient, int, int]]:
    """(client, its last ack_seq, how many of its items) per client, in order of appearance:
    each connection is told once per batch, and must learn of every item it submitted (its
    `_outstanding` count)."""
    groups: dict[int, tuple[BatchClient, int, int]] = {}
    for item in items:
        _, _, count = groups.get(id(item.client), (item.client, 0, 0))
        groups[id(item.client)] = (item.client, item.ack_seq, count + 1)
    return list(groups.values())


def _guarded(what: str, callback: Callable[..., None], *args: Any) -> None:
    """One client's failing callback must not keep the others from their Ack or failure
    notice: they would wait for ever, and their connections never drain."""
    try:
        callback(*args)
    except Exception:
        log.exception("writer: %s callback failed", what)


class Writer:
    def __init__(
        self,
        storage: Storage,
        *,
        window: float = 0.02,
        max_ops: int = 5000,
        on_result: Callable[[BatchResult], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self._clock = clock
        self._batches: CommitWindow[_Item] = CommitWindow(window, max_ops)
        self.in_window = False
        """Waiting for company for the oldest submission (tests)."""
        self._wake = asyncio.Event()
        self._idle = True
        """The loop waits for a first submission (not inside a window): submit wakes it."""
        self._stopping = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="setpoint-writer")
        self._task: asyncio.Task[None] | None = None
        self._on_result = on_result
        self._failed: dict[int, BatchClient] = {}
        self.batches = 0
        self.ops = 0
        self.frames = 0
        self.failures = 0
        self.on_latency: Callable[[float], None] | None = None
        """Told, per submission, the seconds from `submit` to its commit (metrics.py)."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on the writer thread, so it never runs during a batch's transaction.

        Not ordered after frames `submit`ted before: those may still wait in the queue for
        their group-commit window. A caller that needs a connection's frames committed first
        waits for that connection to drain (as a takeover does)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="setpoint-writer")

    @property
    def window(self) -> float:
        return self._batches.window

    def submit(self, client: BatchClient, ops: list[BatchOp], ack_seq: int) -> None:
        now = self._clock()
        full = self._batches.add(_Item(client, ops, ack_seq, now), len(ops), now)
        if self._idle or full:
            self._wake.set()

    def forget(self, client: BatchClient) -> None:
        """The connection is gone and drained: its failure mark is no longer needed."""
        self._failed.pop(id(client), None)

    async def stop(self) -> None:
        """Commit what was submitted, then stop."""
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            await self._task
            self._task = None
        await self.call(self.storage.maintain)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        while True:
            if not self._batches:
                if self._stopping:
                    return
                await self._wait_for_work()
                continue
            await self._window()
            items = self._batches.take()
            try:
                await self._commit(items)
            except Exception:
                # callbacks are guarded one by one; this is the last line so that nothing
                # unforeseen stops the writer: every engine would stall
                log.exception("writer: handling a committed batch failed")

    async def _wait_for_work(self) -> None:
        """Idle: wait for a submission; every MAINTENANCE_PERIOD without one (on the loop's
        shared grid, ticks.py), compact what is due (only when storage says something may be:
        the hop to the writer thread to find nothing due was a fixed cost of every idle wake)."""
        self._idle = True
        self._wake.clear()
        try:
            deadline = next_tick(asyncio.get_running_loop().time(), MAINTENANCE_PERIOD)
            async with asyncio.timeout_at(deadline):
                await self._wake.wait()
        except TimeoutError:
            due = getattr(self.storage, "maintenance_due", None)
            if due is None or due():
                await self._maintain()
        finally:
            self._idle = False

    async def _window(self) -> None:
        """Let more submissions join while the policy allows (a full batch or a stop wakes)."""
        delay = self._batches.wait(self._clock())
        if delay <= 0 or self._stopping:
            return
        self._wake.clear()
        self.in_window = True
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass
        finally:
            self.in_window = False

    async def _commit(self, items: list[_Item]) -> None:
        # A connection whose earlier batch failed must not have later frames stored: they would
        # sit beyond a hole that Registered.last_seq would then hide from the engine.
        skipped = [item for item in items if id(item.client) in self._failed]
        for client, _, count in _group(skipped):
            _guarded("on_store_failed", client.on_store_failed, _EARLIER_FAILED, count)
        items = [item for item in items if id(item.client) not in self._failed]
        if not items:
            return
        ops = [op for item in items for op in item.ops]
        try:
            result = await self.call(self.storage.apply_and_maintain, ops)
        except Fenced as exc:  # another node holds these engines now: fail only their links
            log.warning("writer: %s", exc)
            lost = [i for i in items if any(op.engine_id in exc.engine_ids for op in i.ops)]
            for client, _, count in _group(lost):
                self._failed[id(client)] = client
                _guarded("on_store_failed", client.on_store_failed, exc, count)
            gone = {id(item) for item in lost}
            await self._commit([item for item in items if id(item) not in gone])
            return
        except Exception as exc:
            log.exception(
                "storing a batch of %d messages failed; the engines will resend", len(ops)
            )
            for client, _, count in _group(items):
                self._failed[id(client)] = client
                _guarded("on_store_failed", client.on_store_failed, exc, count)
            self.failures += 1
            return
        self.batches += 1
        self.ops += len(ops)
        self.frames += sum(isinstance(op.action, Store) for op in ops)
        if self.on_latency is not None:
            now = self._clock()
            for item in items:
                _guarded("on_latency", self.on_latency, now - item.submitted)
        # one Ack per connection per batch, for the highest seq it had in the batch
        for client, seq, count in _group(items):
            _guarded("on_committed", client.on_committed, seq, count)
        if self._on_result is not None:
            _guarded("on_result", self._on_result, result)

    @property
    def pending(self) -> int:
        """Submissions waiting for a transaction (queue depth, for metrics)."""
        return len(self._batches)

    async def _maintain(self) -> None:
        try:
            await self.call(self.storage.maintain)
        except Exception:
            log.exception("sample compaction failed; it will be retried")
