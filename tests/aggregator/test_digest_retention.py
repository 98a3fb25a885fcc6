"""Issue 15 item 6: the received-message digests are kept for the frames an engine can still
resend and no more; pruning never lets a differing resend of such a frame through (rule 6)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from aggregator.ingest_session import CompareStored, message_digest
from aggregator.store import BatchOp, Storage, ingest, tables
from engine.link.machine import LinkPolicy
from tests.aggregator.test_storage import Feeder, rid, sample, started


def test_the_digests_cover_every_frame_an_engine_may_resend() -> None:
    # Unacknowledged frames per engine: one window live and one replaying (engine/link/machine).
    assert 2 * LinkPolicy().window <= ingest.DIGEST_RETENTION


def _integrity_errors(storage: Storage, engine_id: str) -> list[str]:
    return [e.message for e in storage.error_log(engine_id) if "integrity" in e.message]


def test_a_differing_resend_of_the_oldest_kept_frame_is_caught_after_pruning(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "DIGEST_RETENTION", 10)
    f = Feeder(storage)
    r = rid()
    f.send(started(r), *[sample(r, 1000.0 + i, FT01=float(i)) for i in range(30)])
    storage.ingest._last_prune = 0.0
    storage.maintain()

    oldest_kept = f.seq - 10  # seq 1 is RunStarted: this is sample i = oldest_kept - 2
    same = sample(r, 1000.0 + oldest_kept - 2, FT01=float(oldest_kept - 2))
    differing = sample(r, 1000.0 + oldest_kept - 2, FT01=-1.0)
    for message in (same, differing):
        message = message.model_copy(update={"seq": oldest_kept})
        storage.apply_batch(
            [BatchOp(f.engine_id, "s2", CompareStored(message, message_digest(message)))]
        )
    [error] = _integrity_errors(storage, f.engine_id)
    assert f"seq {oldest_kept}" in error
    run = storage.run_by_id(r)
    assert run is not None
    with storage.engine.connect() as conn:
        # this run's rows only: the PostgreSQL database is shared by the whole test session
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(tables.T_RECENT)
            .where(tables.T_RECENT.c.run_pk == run.pk)
        ).scalar()
    assert stored == 30, "a resend was stored twice"
