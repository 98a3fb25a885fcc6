"""The idle writer hops to its thread for compaction only when storage says something may be
due (aggregator/writer.py, Compactor.work_due, Ingest.maintenance_due): a quiet aggregator no
longer pays a thread hop every second to find nothing to do, and what is due is still done."""

from __future__ import annotations

from aggregator.store import Storage
from aggregator.store.compaction import Compactor
from aggregator.writer import Writer
from tests.aggregator.helpers import until


class _Storage:
    def __init__(self) -> None:
        self.due = False
        self.asked = 0
        self.maintained = 0

    def maintenance_due(self) -> bool:
        self.asked += 1
        return self.due

    def maintain(self) -> int:
        self.maintained += 1
        return 0


async def test_idle_seconds_maintain_only_when_something_is_due() -> None:
    storage = _Storage()
    writer = Writer(storage)  # type: ignore[arg-type]
    writer.start()
    try:
        await until(lambda: storage.asked >= 2, 10, "two idle seconds")
        assert storage.maintained == 0, "nothing due: no trip to the writer thread"
        storage.due = True
        await until(lambda: storage.maintained >= 1, 10, "the due compaction")
    finally:
        await writer.stop()


def test_compaction_is_due_while_unloaded_marked_or_ten_seconds_on(storage: Storage) -> None:
    now = [1000.0]
    compactor = Compactor(storage.engine, lambda: now[0])
    assert compactor.work_due(now[0]), "its index is not read yet"
    compactor.compact(now[0])
    assert not compactor.work_due(now[0] + 1)
    assert compactor.work_due(now[0] + 10), "the periodic check of old recent rows"
    compactor.run_closed(12345)
    assert compactor.work_due(now[0] + 1), "a closed run's samples are compacted"


def test_storage_says_when_maintenance_is_due(storage: Storage) -> None:
    storage.maintain()  # compacts what is due, prunes the digests
    assert not storage.maintenance_due(), "just done: nothing due for the next seconds"
    storage.ingest.compactor.reset()  # as after a failed compaction
    assert storage.maintenance_due()
