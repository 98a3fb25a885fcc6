"""Issue 15 item 6: the received-message digests are kept, packed 64 to a row, for the frames an
engine can still resend and no more; pruning never lets a resend of such a frame be stored twice
nor a differing copy through unreported (rule 6)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from aggregator.ingest_session import (
    CompareStored,
    IngestSession,
    IntegrityError,
    RecordGap,
    Store,
    message_digest,
)
from aggregator.store import BatchOp, Storage, digests, tables
from engine.link.machine import LinkPolicy
from tests.aggregator.helpers import register_frame
from tests.aggregator.test_storage import Feeder, rid, sample, started


def test_the_digests_cover_every_frame_an_engine_may_resend() -> None:
    # Unacknowledged frames per engine: one window live and one replaying (engine/link/machine).
    assert 2 * LinkPolicy().window <= digests.DIGEST_RETENTION


def _integrity_errors(storage: Storage, engine_id: str) -> list[str]:
    return [e.message for e in storage.error_log(engine_id) if "integrity" in e.message]


def _stored_samples(storage: Storage, run_id: str) -> int:
    run = storage.run_by_id(run_id)
    assert run is not None
    with storage.engine.connect() as conn:
        # this run's rows only: the PostgreSQL database is shared by the whole test session
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(tables.T_RECENT)
            .where(tables.T_RECENT.c.run_pk == run.pk)
        ).scalar()
    return int(count or 0)


def _pruned_feeder(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, samples: int
) -> tuple[Feeder, str]:
    """A run of `samples` samples (seqs 2..samples+1), digests kept for the last 10 seqs."""
    monkeypatch.setattr(digests, "DIGEST_RETENTION", 10)
    f = Feeder(storage)
    r = rid()
    f.send(started(r), *[sample(r, 1000.0 + i, FT01=float(i)) for i in range(samples)])
    storage.ingest._last_prune = 0.0
    storage.maintain()
    return f, r


def test_a_differing_resend_of_the_oldest_frame_in_the_window_is_caught_after_pruning(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    f, r = _pruned_feeder(storage, monkeypatch, 200)
    with storage.engine.connect() as conn:
        kept = digests.stored_seqs(conn, f.engine_id)
    assert kept[0] > 1, "old blocks were pruned"
    oldest_in_window = f.seq - 10  # seq 1 is RunStarted: this is sample i = seq - 2
    assert oldest_in_window in kept
    same = sample(r, 1000.0 + oldest_in_window - 2, FT01=float(oldest_in_window - 2))
    differing = sample(r, 1000.0 + oldest_in_window - 2, FT01=-1.0)
    for message in (same, differing):
        message = message.model_copy(update={"seq": oldest_in_window})
        storage.apply_batch(
            [BatchOp(f.engine_id, "s2", CompareStored(message, message_digest(message)))]
        )
    [error] = _integrity_errors(storage, f.engine_id)
    assert f"seq {oldest_in_window}" in error
    assert _stored_samples(storage, r) == 200, "a resend was stored twice"


def test_a_resend_through_the_session_is_never_stored_twice_pruned_or_not(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine reconnects and resends everything from seq 1 (more than it must): the
    session sees every seq at or below the stored one as a duplicate, whether its digest is
    kept (compared) or pruned (nothing to compare), and stores none of them again."""
    f, r = _pruned_feeder(storage, monkeypatch, 200)
    stored, _ = storage.register_engine(register_frame(f.engine_id, "s3"), "tok")
    assert stored == f.seq
    session = IngestSession(stored)
    ops: list[BatchOp] = []
    messages = [started(r)] + [sample(r, 1000.0 + i, FT01=float(i)) for i in range(200)]
    for seq, message in enumerate(messages, start=1):
        message = message.model_copy(update={"seq": seq})
        actions = session.on_message(message, 0.0)
        assert not any(isinstance(a, Store) for a in actions)
        for a in actions:
            assert isinstance(a, CompareStored | IntegrityError | RecordGap)
            ops.append(BatchOp(f.engine_id, "s3", a))
    storage.apply_batch(ops)
    assert _stored_samples(storage, r) == 200
    assert _integrity_errors(storage, f.engine_id) == []


def test_the_digest_table_stays_small(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    f, _ = _pruned_feeder(storage, monkeypatch, 400)
    with storage.engine.connect() as conn:
        blocks = conn.execute(
            sa.select(sa.func.count())
            .select_from(tables.T_DIGEST)
            .where(tables.T_DIGEST.c.engine_id == f.engine_id)
        ).scalar()
    # the last 10 seqs (391..401) reach into two blocks of 64
    assert blocks is not None and blocks <= 2


def test_a_newer_message_of_a_kind_is_found_among_the_digests(storage: Storage) -> None:
    """What quarantine.superseded asks before replaying a snapshot message."""
    f = Feeder(storage)
    r = rid()
    f.send(started(r), sample(r, 1000.0, FT01=1.0))
    with storage.engine.connect() as conn:
        assert digests.stored_since(conn, f.engine_id, "TagsUpdated", 1)
        assert not digests.stored_since(conn, f.engine_id, "TagsUpdated", 2)
        assert not digests.stored_since(conn, f.engine_id, "RunStarted", 1)


def test_prune_skips_engines_whose_window_has_not_moved_and_catches_up_when_it_does(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    f, r = _pruned_feeder(storage, monkeypatch, 200)
    with storage.engine.connect() as conn:
        first = digests.stored_seqs(conn, f.engine_id)[0]
    statements: list[str] = []
    sa.event.listen(storage.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    storage.ingest._last_prune = 0.0
    storage.maintain()
    assert not [s for s in statements if "DELETE FROM received_digest" in s], "nothing to forget"
    f.send(*[sample(r, 2000.0 + i, FT01=float(i)) for i in range(digests.BLOCK)])
    storage.ingest._last_prune = 0.0
    storage.maintain()
    with storage.engine.connect() as conn:
        kept = digests.stored_seqs(conn, f.engine_id)
    assert kept[0] >= first + digests.BLOCK, "the window moved a block: the old one is gone"
    assert f.seq - 10 in kept, "the last 10 seqs are still kept"
