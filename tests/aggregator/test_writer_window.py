"""The group-commit window as aggregator/writer.py carries it out (issue 15 item 8): every
submission is committed exactly once, in order, acknowledged once per batch per connection,
also when batches are cut at max_ops, when a commit outlasts the window, and when the writer
stops. The timing rules themselves are tested without a loop in test_commit_window.py; here the
writer's clock is a fake one moved by the test."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aggregator.ingest_session import RecordGap
from aggregator.store import BatchOp, BatchResult
from aggregator.writer import Writer
from tests.aggregator.helpers import until


class _Storage:
    """Records each batch's ops; `hold` keeps a batch on the writer thread until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def apply_and_maintain(self, ops: list[BatchOp]) -> BatchResult:
        self.entered.set()
        self.hold.wait(10)
        self.batches.append([op.action.first for op in ops])  # type: ignore[union-attr]
        return BatchResult()

    def maintain(self) -> int:
        return 0


class _Client:
    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []
        self.failed: list[int] = []

    def on_committed(self, seq: int, items: int) -> None:
        self.acks.append((seq, items))

    def on_store_failed(self, error: BaseException, items: int) -> None:
        self.failed.append(items)


def _ops(*seqs: int) -> list[BatchOp]:
    return [BatchOp("e", "s", RecordGap(seq, seq, "test")) for seq in seqs]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _writer(storage: _Storage, clock: _Clock | None = None, **kw: Any) -> Writer:
    writer = Writer(storage, clock=clock or _Clock(), **kw)  # type: ignore[arg-type]
    writer.start()
    return writer


async def test_submissions_within_the_window_share_one_batch_and_one_ack() -> None:
    storage = _Storage()
    clock = _Clock()
    writer = _writer(storage, clock, window=0.2)
    a, b = _Client(), _Client()
    try:
        writer.submit(a, _ops(1), 1)
        await until(lambda: writer.in_window, 5, "the writer waiting for company")
        clock.now += 0.01
        writer.submit(b, _ops(10), 10)
        writer.submit(a, _ops(2, 3), 3)
        await until(lambda: a.acks and b.acks, 5, "the batch's acks")
        assert storage.batches == [[1, 10, 2, 3]]
        assert a.acks == [(3, 2)] and b.acks == [(10, 1)]
        assert writer.pending == 0 and writer.batches == 1
    finally:
        await writer.stop()


async def test_max_ops_cuts_batches_and_every_submission_is_committed_once() -> None:
    storage = _Storage()
    writer = _writer(storage, window=0.2, max_ops=4)
    a = _Client()
    try:
        for seq in range(1, 10, 2):
            writer.submit(a, _ops(seq, seq + 1), seq + 1)
        await until(lambda: sum(n for _, n in a.acks) == 5, 5, "every submission acked")
        assert [seq for batch in storage.batches for seq in batch] == list(range(1, 11))
        assert all(len(batch) <= 4 for batch in storage.batches)
        assert [seq for seq, _ in a.acks] == sorted(seq for seq, _ in a.acks)
        assert a.acks[-1][0] == 10 and not a.failed
    finally:
        await writer.stop()


async def test_submissions_during_a_long_commit_follow_at_once_in_order() -> None:
    storage = _Storage()
    clock = _Clock()
    writer = _writer(storage, clock, window=0.01)
    a = _Client()
    try:
        storage.hold.clear()
        writer.submit(a, _ops(1), 1)
        await asyncio.to_thread(storage.entered.wait, 5)
        for seq in (2, 3, 4):
            writer.submit(a, _ops(seq), seq)
            clock.now += 0.02  # each older than the window when the commit ends
        storage.hold.set()
        await until(lambda: sum(n for _, n in a.acks) == 4, 5, "every submission acked")
        assert storage.batches == [[1], [2, 3, 4]]
        assert a.acks == [(1, 1), (4, 3)]
    finally:
        await writer.stop()


async def test_stop_commits_what_is_still_waiting_for_its_window() -> None:
    storage = _Storage()
    writer = _writer(storage, window=30.0)
    a = _Client()
    writer.submit(a, _ops(1), 1)
    writer.submit(a, _ops(2), 2)
    await until(lambda: writer.in_window, 5, "the writer inside its (long) window")
    await asyncio.wait_for(writer.stop(), 5)
    assert storage.batches == [[1, 2]]
    assert a.acks == [(2, 2)]


async def test_a_submission_after_a_silence_does_not_wait_for_the_window() -> None:
    """One engine sending a sample a second: nothing would join its frame, so the window would
    only delay the Ack. Submissions close together still share the window's batch."""
    storage = _Storage()
    clock = _Clock()
    # a window no test run outlasts; two operations fill a batch
    writer = _writer(storage, clock, window=60.0, max_ops=2)
    a, b = _Client(), _Client()
    try:
        writer.submit(a, _ops(1), 1)
        writer.submit(b, _ops(10), 10)
        await until(lambda: a.acks and b.acks, 5, "the first batch")
        assert storage.batches == [[1, 10]], "close together: one batch"
        clock.now += 500.0  # a long silence
        writer.submit(a, _ops(2), 2)
        await until(lambda: len(a.acks) == 2, 5, "the lone submission's ack, before the window")
        assert storage.batches == [[1, 10], [2]]
        clock.now += 1.0
        writer.submit(b, _ops(11), 11)  # right after: it waits for company again
        await until(lambda: writer.in_window, 5, "the close submission waiting for company")
        assert b.acks == [(10, 1)], "a submission close to the last one waits for the window"
    finally:
        await writer.stop()
    assert b.acks == [(10, 1), (11, 1)], "stop commits what waited"
