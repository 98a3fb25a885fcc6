"""The group-commit writer tells every connection about its batch even when one of them fails."""

from __future__ import annotations

from aggregator.store import BatchResult, Storage
from aggregator.writer import Writer
from tests.aggregator.helpers import until


class _Client:
    def __init__(self, *, raises: bool) -> None:
        self.raises = raises
        self.committed: list[tuple[int, int]] = []
        self.failed: list[int] = []

    def on_committed(self, seq: int, items: int) -> None:
        self.committed.append((seq, items))
        if self.raises:
            raise RuntimeError("a broken connection callback")

    def on_store_failed(self, error: BaseException, items: int) -> None:
        self.failed.append(items)


async def test_a_raising_callback_does_not_keep_the_others_from_their_ack(
    storage: Storage,
) -> None:
    results: list[BatchResult] = []

    def on_result(result: BatchResult) -> None:
        results.append(result)
        raise RuntimeError("a broken live-side hook")

    writer = Writer(storage, window=0.05, on_result=on_result)
    writer.start()
    bad, good = _Client(raises=True), _Client(raises=False)
    try:
        # submitted together: one batch, the raising client first
        writer.submit(bad, [], 1)
        writer.submit(good, [], 7)
        writer.submit(good, [], 8)
        await until(lambda: good.committed, 5, "the second client's commit notice")
        assert bad.committed == [(1, 1)]
        assert good.committed == [(8, 2)]  # once per batch, counting both of its items
        assert writer.batches == 1 and len(results) == 1
        # the writer goes on
        writer.submit(good, [], 9)
        await until(lambda: len(good.committed) == 2, 5, "the next batch")
        assert good.committed[-1] == (9, 1) and not good.failed
    finally:
        await writer.stop()
