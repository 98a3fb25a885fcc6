"""When the writer commits what is waiting (group commit), as a pure policy fed with times.

The writer (writer.py) owns the thread, the asyncio waits and the callbacks; this class owns
the queue and the decisions, so that every timing rule is tested without a loop, a thread or
a sleep (tests/aggregator/test_commit_window.py):

* a batch closes `window` seconds after its oldest submission, not after the writer looks: a
  commit that took longer than the window is followed at once by the next, so the writer never
  falls further behind than one transaction;
* a batch closes at once when it holds `max_ops` operations;
* a submission that follows a silence (more than `sparse` windows since the one before: one
  engine sending a sample a second) closes its batch at once: nothing is likely to join it, so
  the window would only delay its Ack and cost a timer wake-up.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

SPARSE = 2.0
"""Windows of silence before a submission after which it does not wait for company."""


@dataclass(slots=True)
class _Waiting(Generic[T]):
    item: T
    ops: int
    submitted: float


class CommitWindow(Generic[T]):
    def __init__(self, window: float, max_ops: int, sparse: float = SPARSE) -> None:
        self.window = window
        self.max_ops = max_ops
        self.sparse = sparse
        self._waiting: deque[_Waiting[T]] = deque()
        self._queued_ops = 0
        self._last_submitted: float | None = None
        self._alone = False
        """The oldest waiting submission came after a silence: its batch does not wait."""

    def add(self, item: T, ops: int, now: float) -> bool:
        """Queue a submission of `ops` operations made at `now`; True when a batch is full (the
        writer should not wait for its window)."""
        if not self._waiting:
            last = self._last_submitted
            self._alone = last is not None and now - last > self.sparse * self.window
        self._last_submitted = now
        self._waiting.append(_Waiting(item, ops, now))
        self._queued_ops += ops
        return self.full

    @property
    def full(self) -> bool:
        return self._queued_ops >= self.max_ops

    def wait(self, now: float) -> float:
        """Seconds the writer may still wait for company before committing (0: commit now;
        infinity: nothing waits)."""
        if not self._waiting:
            return math.inf
        if self._alone or self.full:
            return 0.0
        return max(0.0, self._waiting[0].submitted + self.window - now)

    def take(self) -> list[T]:
        """The oldest submissions up to `max_ops` operations (at least one)."""
        first = self._waiting.popleft()
        taken = [first]
        count = first.ops
        while self._waiting and count + self._waiting[0].ops <= self.max_ops:
            waiting = self._waiting.popleft()
            taken.append(waiting)
            count += waiting.ops
        self._queued_ops -= count
        self._alone = False  # what is left waited behind this batch: not after a silence
        return [waiting.item for waiting in taken]

    def __len__(self) -> int:
        return len(self._waiting)
