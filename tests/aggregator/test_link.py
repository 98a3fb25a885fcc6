"""Protocol rules 1, 2, 5, 6, 7, 8, 10, 11, 12 over real websockets against a real aggregator,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

import protocol as p
from aggregator.context import Settings
from aggregator.store.digests import stored_seqs
from aggregator.store.tables import T_SEQ
from tests.aggregator.helpers import Aggregator, RawEngine, register_frame, tags, until


@pytest.fixture
async def engine(aggregator: Aggregator) -> AsyncIterator[RawEngine]:
    client = RawEngine(aggregator)
    yield client
    await client.aclose()


def run_id() -> str:
    return "run-" + uuid.uuid4().hex[:10]


def stored_seq(agg: Aggregator, engine_id: str) -> int:
    with agg.ctx.storage.engine.connect() as conn:
        value = conn.execute(
            sa.select(T_SEQ.c.last_seq).where(T_SEQ.c.engine_id == engine_id)
        ).scalar()
    return int(value or 0)


def errors(agg: Aggregator, engine_id: str) -> list[str]:
    return [e.message for e in agg.ctx.storage.error_log(engine_id)]


def run_log_texts(agg: Aggregator, rid: str) -> list[str]:
    run = agg.ctx.storage.run_by_id(rid)
    assert run is not None
    return [line["text"] for line in agg.ctx.storage.run_log(run.pk)]


def ft01(agg: Aggregator, rid: str) -> list[float]:
    storage = agg.ctx.storage
    run = storage.run_by_id(rid)
    assert run is not None
    with storage.engine.connect() as conn:
        tag_ids = {name: tag_id for tag_id, name, _ in storage.run_tags(conn, run.pk)}
    samples, _ = storage.read_samples(run.pk, tag_ids["FT01"], 0, 2e10)
    return [v for _, v in samples]  # type: ignore[misc]


# --- rule 1: token at the upgrade, RegisterEngine first ----------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc"])
async def test_rule1_bad_token_is_refused_before_upgrade(
    aggregator: Aggregator, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(f"{aggregator.url}/engine/ws", headers=headers)
        assert info.value.status == 401
        async with http.get(f"{aggregator.url}/engine/ws", headers=headers) as response:
            assert response.status == 401
            body = await response.json()
    assert "token" in body["error"]


async def test_rule1_token_never_logged(
    aggregator: Aggregator, caplog: pytest.LogCaptureFixture
) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(
                f"{aggregator.url}/engine/ws", headers={"Authorization": "Bearer sekrit-123"}
            )
    client = RawEngine(aggregator)
    try:
        await client.register()
    finally:
        await client.aclose()
    assert "sekrit-123" not in caplog.text
    assert aggregator.token not in caplog.text


async def test_rule1_first_frame_must_register(engine: RawEngine) -> None:
    await engine.connect()
    await engine.send(tags(1, time.time()))
    error = await engine.wait_for(p.ProtocolErrorMessage)
    assert error.rule == 1 and error.fatal
    assert "RegisterEngine" in error.message
    await until(engine.closed.is_set, 5, "the aggregator to close the link")


# --- rule 2: Registered with last_seq and clock offset ------------------------------------------


async def test_rule2_registered_reports_stored_seq_and_clock_offset(engine: RawEngine) -> None:
    registered = await engine.register(clock=time.time() - 100.0)
    assert registered.last_seq == 0
    assert registered.engine_id == engine.engine_id
    assert 99.0 < registered.clock_offset < 101.0
    rid = run_id()
    await engine.send(
        p.RunStarted(seq=1, time=time.time(), run_id=rid, started=time.time(), method_version=1)
    )
    for seq in range(2, 6):
        await engine.send(tags(seq, time.time(), rid))
    await engine.wait_ack(5)
    await engine.close()
    again = await engine.register()
    assert again.last_seq == 5


# --- rule 5: cumulative acks only after commit ----------------------------------------------------


async def test_rule5_ack_only_after_commit(aggregator: Aggregator, engine: RawEngine) -> None:
    await engine.register()
    rid = run_id()
    seen_at_ack: list[int] = []
    for seq in range(1, 21):
        await engine.send(tags(seq, 1000.0 + seq, rid))
    await engine.wait_ack(20)
    for ack in engine.of_type(p.Ack):
        # every acked seq is visible to another connection: the transaction has committed
        with aggregator.ctx.storage.engine.connect() as conn:
            count = sum(1 for s in stored_seqs(conn, engine.engine_id) if s <= ack.seq)
        seen_at_ack.append(count)
        assert count == ack.seq
    acks = [a.seq for a in engine.of_type(p.Ack)]
    assert acks == sorted(acks), "acks are cumulative, never going back"
    assert len(acks) < 20, "frames arriving together share a commit and an ack"
    assert ft01(aggregator, rid) == [float(s) for s in range(1, 21)]


async def test_rule5_no_ack_when_the_commit_fails(
    aggregator: Aggregator, engine: RawEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed commit is never acked, and nothing queued behind it is stored either (that would
    leave a hole hidden behind a higher stored seq)."""
    storage = aggregator.ctx.storage
    original = storage.ingest.apply_batch
    calls = {"n": 0}
    first_batch_started = threading.Event()
    later_frames_sent = threading.Event()

    def failing(ops):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            first_batch_started.set()
            later_frames_sent.wait(5)
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))
        return original(ops)

    monkeypatch.setattr(storage.ingest, "apply_batch", failing)
    await engine.register()
    rid = run_id()
    await engine.send(tags(1, 1000.0, rid))
    await until(first_batch_started.is_set, 5, "the first batch to reach the database")
    for seq in range(2, 6):
        await engine.send(tags(seq, 1000.0 + seq, rid))
    await until(
        lambda: aggregator.ctx.connections[engine.engine_id].session.accepted == 5,  # type: ignore[union-attr]
        5,
        "frames 2..5 to be queued behind the failing batch",
    )
    later_frames_sent.set()
    await until(engine.closed.is_set, 5, "the link to close after the failed commit")
    assert not engine.of_type(p.Ack)
    registered = await engine.register()
    assert registered.last_seq == 0
    assert stored_seq(aggregator, engine.engine_id) == 0
    for seq in range(1, 6):
        await engine.send(tags(seq, 1000.0 + seq, rid))
    await engine.wait_ack(5)
    assert ft01(aggregator, rid) == [1.0, 2.0, 3.0, 4.0, 5.0]


# --- rule 6: exactly once, integrity errors ------------------------------------------------------


async def test_rule6_resent_messages_are_acked_and_ignored(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    await engine.register()
    rid = run_id()
    for seq in range(1, 4):
        await engine.send(tags(seq, 1000.0 + seq, rid))
    await engine.wait_ack(3)
    await engine.close()
    registered = await engine.register()
    assert registered.last_seq == 3
    # resend (after an ack got lost, say) plus one new message
    for seq in range(2, 5):
        await engine.send(tags(seq, 1000.0 + seq, rid, historical=True))
    await engine.wait_ack(4)
    assert ft01(aggregator, rid) == [1.0, 2.0, 3.0, 4.0]
    # a duplicate alone is acknowledged too
    before = len(engine.of_type(p.Ack))
    await engine.send(tags(4, 1004.0, rid))
    await until(lambda: len(engine.of_type(p.Ack)) > before, 5, "an ack for the duplicate")
    assert engine.of_type(p.Ack)[-1].seq == 4
    assert not [e for e in errors(aggregator, engine.engine_id) if "integrity" in e]


async def test_rule6_differing_copy_is_an_integrity_error(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    await engine.register()
    rid = run_id()
    for seq in range(1, 3):
        await engine.send(tags(seq, 1000.0 + seq, rid))
    await engine.wait_ack(2)
    await engine.close()
    await engine.register()
    await engine.send(tags(2, 1002.0, rid, FT01=99.0))
    await engine.send(tags(3, 1003.0, rid))
    await engine.wait_ack(3)
    await until(
        lambda: any("integrity" in e for e in errors(aggregator, engine.engine_id)),
        5,
        "integrity error",
    )
    assert ft01(aggregator, rid) == [1.0, 2.0, 3.0], "the first copy is kept"


# --- rule 7: gaps ---------------------------------------------------------------------------------


async def _start_run(engine: RawEngine) -> str:
    rid = run_id()
    await engine.register()
    await engine.send(
        p.RunStarted(seq=1, time=1000.0, run_id=rid, started=1000.0, method_version=1)
    )
    await engine.send(tags(2, 1001.0, rid))
    await engine.wait_ack(2)
    return rid


async def test_rule7_gap_is_filled_by_resend(aggregator: Aggregator, engine: RawEngine) -> None:
    rid = await _start_run(engine)
    await engine.send(tags(4, 1004.0, rid))
    request = await engine.wait_for(p.ResendRequest)
    assert request.from_seq == 3
    assert engine.acked() == 2, "nothing beyond the hole is acknowledged"
    await engine.send(tags(3, 1003.0, rid))
    await engine.send(tags(4, 1004.0, rid))
    await engine.wait_ack(4)
    assert ft01(aggregator, rid) == [2.0, 3.0, 4.0]
    assert not [e for e in errors(aggregator, engine.engine_id) if "gap" in e]


async def test_rule7_engine_reports_the_messages_gone(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    rid = await _start_run(engine)
    await engine.send(tags(5, 1005.0, rid))
    await engine.wait_for(p.ResendRequest, lambda r: r.from_seq == 3)
    await engine.send(
        p.ProtocolErrorMessage(
            rule=7,
            seq=3,
            seq_end=4,
            message="messages 3..4 are no longer in the engine's outbox; resending from 5",
        )
    )
    await engine.wait_ack(5)
    assert any("seq 3..4" in text for text in run_log_texts(aggregator, rid))
    assert any("seq 3..4" in e for e in errors(aggregator, engine.engine_id))
    await engine.send(tags(6, 1006.0, rid))
    await engine.wait_ack(6)
    assert ft01(aggregator, rid) == [2.0, 5.0, 6.0]


async def test_rule7_resend_starting_later_records_the_gap(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    rid = await _start_run(engine)
    await engine.send(tags(4, 1004.0, rid))
    await engine.wait_for(p.ResendRequest, lambda r: r.from_seq == 3)
    await engine.send(tags(4, 1004.0, rid))  # the engine's resend starts at 4: it has lost 3
    await engine.wait_ack(4)
    assert any("seq 3..3" in text for text in run_log_texts(aggregator, rid))


async def test_rule7_unanswered_resend_times_out_into_a_gap(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    rid = await _start_run(engine)
    await engine.send(tags(4, 1004.0, rid))
    await engine.wait_for(p.ResendRequest, lambda r: r.from_seq == 3)
    await engine.send(tags(5, 1005.0, rid))  # still beyond the hole; nothing resent
    await engine.wait_ack(5, timeout=10)  # resend_timeout is 1 s in these tests
    assert any("seq 3..3" in text for text in run_log_texts(aggregator, rid))
    assert ft01(aggregator, rid) == [2.0, 4.0, 5.0]


async def test_rule7_heartbeat_reveals_a_tail_gap(engine: RawEngine) -> None:
    await _start_run(engine)
    await engine.send(p.Heartbeat(seq=3, time=time.time()))
    await engine.send(p.Heartbeat(seq=3, time=time.time()))
    request = await engine.wait_for(p.ResendRequest)
    assert request.from_seq == 3


# --- rule 8: historical data fill the run, not the live view --------------------------------------


async def test_rule8_historical_values_are_stored_but_not_live(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    await engine.register()
    rid = run_id()
    now = time.time()
    await engine.send(tags(1, now, rid, FT01=50.0))
    await engine.send(tags(2, now - 60, rid, historical=True, FT01=1.0, PT01=2.0))
    await engine.send(tags(3, now + 0.1, rid, sample=False, FT01=51.0))
    await engine.wait_ack(3)
    live = aggregator.ctx.live.engines[engine.engine_id]
    assert live.tags["FT01"].value == 51.0, "sample=False updates live values"
    assert "PT01" not in live.tags, "historical values never become live"
    assert sorted(ft01(aggregator, rid)) == [1.0, 50.0], (
        "historical samples are stored, sample=False are not"
    )


async def test_rule8_frames_ahead_of_a_replay_are_live_at_once_and_stored_in_order(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    """The engine interleaves live frames with its backlog replay after a reconnect."""
    await engine.register()
    rid = run_id()
    now = time.time()
    await engine.send(tags(1, now - 10, rid, FT01=1.0))
    await engine.wait_ack(1)
    await engine.close()
    await engine.register()
    await engine.send(tags(4, now, rid, FT01=4.0))  # live, ahead of the replay of 2..3
    await until(
        lambda: aggregator.ctx.live.engines[engine.engine_id].tags["FT01"].value == 4.0,
        5,
        "live value",
    )
    await engine.send(tags(2, now - 5, rid, historical=True, FT01=2.0))
    await engine.send(tags(3, now - 4, rid, historical=True, FT01=3.0))
    await engine.wait_ack(4)
    assert ft01(aggregator, rid) == [1.0, 2.0, 3.0, 4.0]
    assert aggregator.ctx.live.engines[engine.engine_id].tags["FT01"].value == 4.0
    assert not [e for e in errors(aggregator, engine.engine_id) if "gap" in e]


# --- rule 10: heartbeats and stale marking -------------------------------------------------------


@pytest.fixture
def fast_heartbeat() -> Settings:
    return Settings(heartbeat_interval=0.2, resend_timeout=1.0, batch_window=0.005)


@contextlib.asynccontextmanager
async def _heartbeat_link(
    db_url: str, settings: Settings
) -> AsyncIterator[tuple[Aggregator, RawEngine]]:
    """An aggregator with a 0.2 s heartbeat and one raw engine connected to it."""
    from aggregator.app import create_app
    from aggregator.security import new_token, token_hash

    agg = Aggregator(create_app(db_url, settings))
    await agg.start()
    agg.token = new_token()
    agg.ctx.storage.create_engine_token("hb-" + uuid.uuid4().hex[:6], token_hash(agg.token))
    client = RawEngine(agg)
    try:
        yield agg, client
    finally:
        await client.aclose()
        await agg.stop()


async def test_rule10_silence_closes_and_marks_stale(db_url: str, fast_heartbeat: Settings) -> None:
    async with _heartbeat_link(db_url, fast_heartbeat) as (agg, client):
        registered = await client.register()
        assert registered.heartbeat_interval == 0.2
        last_sent = time.monotonic()  # the aggregator hears it after this: silence starts later
        await client.send(tags(1, time.time(), None, sample=False, FT01=3.0))
        await client.wait_ack(1)
        live = agg.ctx.live.engines[client.engine_id]
        assert live.online and live.tags["FT01"].quality == p.Quality.GOOD
        await until(client.closed.is_set, 5, "the aggregator to close a silent link")
        # three silent intervals (0.6 s) from the last frame heard, not at once
        assert time.monotonic() - last_sent >= 0.5
        assert not live.online
        assert live.tags["FT01"].quality == p.Quality.STALE


async def test_rule10_answering_pings_keeps_the_link(db_url: str, fast_heartbeat: Settings) -> None:
    async with _heartbeat_link(db_url, fast_heartbeat) as (_, client):
        await client.register()
        answered: set[str] = set()

        def pings_answered() -> bool:
            return len(answered) >= 8

        deadline = time.monotonic() + 10
        while not pings_answered() and time.monotonic() < deadline:
            for ping in client.of_type(p.Ping):
                if ping.id not in answered:
                    answered.add(ping.id)
                    await client.send(p.CommandResult(id=ping.id, ok=True))
            await until(
                lambda: len(client.of_type(p.Ping)) > len(answered) or client.closed.is_set(),
                5,
                "next ping",
            )
        assert pings_answered() and not client.closed.is_set()


async def test_rule10_acks_stand_for_pings_while_frames_flow(
    db_url: str, fast_heartbeat: Settings
) -> None:
    """Any frame counts as heard: while the engine's frames are acknowledged within each
    interval, the aggregator sends no Ping after the one at registration (and the engine
    answers none); once the link is quiet, Pings come again each interval."""
    async with _heartbeat_link(db_url, fast_heartbeat) as (_, client):
        await client.register()
        await until(lambda: len(client.of_type(p.Ping)) == 1, 5, "the Ping at registration")
        rid = run_id()
        for seq in range(1, 41):  # 2 s of frames, 10 heartbeat intervals
            await client.send(tags(seq, 1000.0 + seq, rid, FT01=float(seq)))
            await client.wait_ack(seq, timeout=5)
            await asyncio.sleep(0.05)
        assert len(client.of_type(p.Ping)) == 1, "no Ping while Acks flow"
        assert not client.closed.is_set()
        await until(lambda: len(client.of_type(p.Ping)) >= 3, 5, "Pings on a quiet link")
        assert not client.closed.is_set()


# --- rule 11: bad frames --------------------------------------------------------------------------


async def test_rule11_bad_frames_get_protocol_errors_and_the_link_stays(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    await engine.register()
    rid = run_id()
    await engine.send(tags(1, 1001.0, rid))
    await engine.wait_ack(1)
    bad = [
        b"{not json",
        b'{"type": "TagsUpdated", "seq": 2, "time": 1.0, "tags": [{"name": "FT01", "value": 1, "tick": 1, "quality": "meh"}]}',
        b'{"type": "NoSuchThing"}',
        b"x" * (p.MAX_FRAME_SIZE + 10),
        p.encode(p.Ack(seq=3)),
    ]
    for frame in bad:
        await engine.send_raw(frame)
    await until(
        lambda: len(engine.of_type(p.ProtocolErrorMessage)) == len(bad),
        10,
        "one ProtocolError per bad frame",
    )
    replies = engine.of_type(p.ProtocolErrorMessage)
    assert [r.rule for r in replies] == [11, 11, 11, 11, 4]
    assert not any(r.fatal for r in replies)
    assert "quality" in replies[1].message
    assert "exceeds" in replies[3].message
    await engine.send(tags(2, 1002.0, rid))
    await engine.wait_ack(2)
    assert ft01(aggregator, rid) == [1.0, 2.0], "nothing stored from the bad frames, nothing lost"


async def test_rule11_bad_frame_before_registration_is_fatal(engine: RawEngine) -> None:
    await engine.connect()
    await engine.send_raw(b"{broken")
    error = await engine.wait_for(p.ProtocolErrorMessage)
    assert error.fatal and error.rule == 11
    await until(engine.closed.is_set, 5, "close")


# --- rule 12: versions ---------------------------------------------------------------------------


async def test_rule12_other_major_is_refused_naming_both(engine: RawEngine) -> None:
    await engine.connect()
    await engine.send_raw(json.dumps(_register_dict(engine, "2.0")))
    error = await engine.wait_for(p.ProtocolErrorMessage)
    assert error.rule == 12 and error.fatal
    assert "2.0" in error.message and p.PROTOCOL_VERSION in error.message
    await until(engine.closed.is_set, 5, "close")
    assert not engine.of_type(p.Registered)


async def test_rule12_same_major_newer_minor_with_unknown_fields_is_accepted(
    engine: RawEngine,
) -> None:
    await engine.connect()
    frame = _register_dict(engine, "1.7")
    frame["some_future_field"] = {"x": 1}
    await engine.send_raw(json.dumps(frame))
    registered = await engine.wait_for(p.Registered)
    assert registered.protocol_version == p.PROTOCOL_VERSION


def _register_dict(engine: RawEngine, version: str) -> dict[str, object]:
    from tests.aggregator.helpers import register_frame

    data = register_frame(engine.engine_id).model_dump(mode="json")
    data["protocol_version"] = version
    return data


# --- takeover ------------------------------------------------------------------------------------


async def test_new_connection_of_the_same_engine_replaces_the_old(aggregator: Aggregator) -> None:
    first = RawEngine(aggregator)
    second = RawEngine(aggregator, first.engine_id)
    try:
        await first.register()
        rid = run_id()
        await first.send(tags(1, 1001.0, rid))
        await first.wait_ack(1)
        registered = await second.register()
        assert registered.last_seq == 1
        await until(first.closed.is_set, 5, "the old link to close")
        await second.send(tags(2, 1002.0, rid))
        await second.wait_ack(2)
        assert aggregator.ctx.live.engines[first.engine_id].online
    finally:
        await first.aclose()
        await second.aclose()


async def test_one_failing_message_does_not_fail_the_other_engines_batch(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.app import create_app
    from aggregator.security import new_token, token_hash
    from aggregator.store.ingest import Ingest

    agg = Aggregator(create_app(db_url, Settings(resend_timeout=1.0, batch_window=0.3)))
    await agg.start()
    agg.token = new_token()
    agg.ctx.storage.create_engine_token("sp-" + uuid.uuid4().hex[:6], token_hash(agg.token))
    real_apply = Ingest._apply

    def apply(self: Ingest, batch: Any, op: Any, msg: Any) -> None:
        real_apply(self, batch, op, msg)  # its rows are written, then rolled back
        if isinstance(msg, p.TagsUpdated) and any(t.value == 666.0 for t in msg.tags):
            raise RuntimeError("a bug met by this one message")

    monkeypatch.setattr(Ingest, "_apply", apply)
    bad, good = RawEngine(agg), RawEngine(agg)
    rid_bad, rid_good = run_id(), run_id()
    try:
        await bad.register()
        await good.register()
        await bad.send(tags(1, 1001.0, rid_bad, FT01=1.5))
        await bad.wait_ack(1)
        batches = agg.ctx.writer.batches
        await bad.send(tags(2, 1002.0, rid_bad, FT01=666.0))
        await good.send(tags(1, 1002.0, rid_good, FT01=2.5))
        await good.wait_ack(1)
        await bad.wait_ack(2)  # acked because it is kept whole in quarantine: the stream goes on
        assert agg.ctx.writer.batches == batches + 1  # both frames shared one batch
        assert ft01(agg, rid_good) == [2.5]
        assert ft01(agg, rid_bad) == [1.5]
        assert stored_seq(agg, bad.engine_id) == 2
        # quarantined, nothing lost: the whole message, why, and a line in the error log
        entries, _, total = agg.ctx.storage.quarantine.page(engine_id=bad.engine_id)
        assert total == 1 and [(e.seq, e.kind) for e in entries] == [(2, "TagsUpdated")]
        assert "a bug met by this one message" in entries[0].error
        kept = p.decode(agg.ctx.storage.quarantine.message_json(entries[0].id) or "")
        assert isinstance(kept, p.TagsUpdated) and kept.tags[0].value == 666.0
        assert any(
            "TagsUpdated seq 2 could not be applied" in m and f"quarantine #{entries[0].id}" in m
            for m in errors(agg, bad.engine_id)
        )
        assert not any("could not be applied" in m for m in errors(agg, good.engine_id))
        assert agg.ctx.storage.quarantine.page(engine_id=good.engine_id)[2] == 0
        assert not bad.closed.is_set() and not good.closed.is_set()
        await bad.send(tags(3, 1003.0, rid_bad, FT01=3.5))
        await bad.wait_ack(3)
        assert ft01(agg, rid_bad) == [1.5, 3.5]
    finally:
        await bad.aclose()
        await good.aclose()
        await agg.stop()


class _StuckConnection:
    """An old connection that never finishes (its writer callback or socket hung)."""

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.closes: list[str] = []

    def close(self, reason: str) -> None:
        self.closes.append(reason)


async def test_a_stuck_old_connection_does_not_lock_the_engine_out(
    aggregator: Aggregator,
) -> None:
    aggregator.ctx.settings = dataclasses.replace(aggregator.ctx.settings, takeover_timeout=0.2)
    engine = RawEngine(aggregator)
    stuck = _StuckConnection()
    aggregator.ctx.connections[engine.engine_id] = stuck  # type: ignore[assignment]
    try:
        await engine.connect()
        await engine.send(register_frame(engine.engine_id))
        refusal = await engine.wait_for(p.ProtocolErrorMessage)
        assert refusal.fatal and "did not end within 0.2 s" in refusal.message
        await until(engine.closed.is_set, 5, "the refused link to close")
        assert stuck.closes  # it was asked to end
        # the client may see the close before the server's handler has left its `finally`
        await until(
            lambda: engine.engine_id not in aggregator.ctx.connections, 5, "the entry removed"
        )
        # the engine's retry registers and stores
        registered = await engine.register()
        assert registered.last_seq == 0
        await engine.send(tags(1, 1001.0, run_id()))
        await engine.wait_ack(1)
    finally:
        await engine.aclose()


# --- engine restarts and the live publish hook ----------------------------------------------------


async def test_engine_restart_mid_run(aggregator: Aggregator, engine: RawEngine) -> None:
    r1, r2 = run_id(), run_id()
    await engine.register("session-1")
    await engine.send(p.RunStarted(seq=1, time=1000.0, run_id=r1, started=1000.0, method_version=1))
    await engine.send(tags(2, 1001.0, r1))
    await engine.wait_ack(2)
    await engine.close()
    # the engine process restarts and continues the same run: it stays open
    registered = await engine.register("session-2")
    assert registered.last_seq == 2
    await engine.send(tags(3, 1002.0, r1))
    await engine.wait_ack(3)
    assert aggregator.ctx.storage.run_by_id(r1).stopped is None  # type: ignore[union-attr]
    await engine.close()
    # it restarts again and starts a new run without RunStopped for the old one
    await engine.register("session-3")
    await engine.send(p.RunStarted(seq=4, time=2000.0, run_id=r2, started=2000.0, method_version=1))
    await engine.wait_ack(4)
    old = aggregator.ctx.storage.run_by_id(r1)
    assert old is not None and old.stop_reason == "engine restarted"
    assert any("engine restarted" in text for text in run_log_texts(aggregator, r1))
    assert ft01(aggregator, r1) == [2.0, 3.0]


@pytest.mark.parametrize("after_restart", ["stopped", "other run"])
async def test_engine_restarted_without_the_run_closes_it(
    aggregator: Aggregator, engine: RawEngine, after_restart: str
) -> None:
    r1 = run_id()
    await engine.register("session-1")
    await engine.send(p.RunStarted(seq=1, time=1000.0, run_id=r1, started=1000.0, method_version=1))
    await engine.send(p.ControlState(seq=2, time=1000.5, run_id=r1, state=p.SystemState.RUNNING))
    await engine.send(tags(3, 1001.0, r1))
    await engine.wait_ack(3)
    await engine.close()
    # the engine process restarts; its first ControlState no longer runs r1 (no RunStarted)
    registered = await engine.register("session-2")
    assert registered.last_seq == 3
    live = aggregator.ctx.live.engines[engine.engine_id]
    assert live.run_id == r1
    if after_restart == "stopped":
        state = p.ControlState(seq=4, time=1500.0, run_id=None, state=p.SystemState.STOPPED)
    else:
        state = p.ControlState(seq=4, time=1500.0, run_id="r-new", state=p.SystemState.PAUSED)
    await engine.send(state)
    await engine.wait_ack(4)
    old = aggregator.ctx.storage.run_by_id(r1)
    assert old is not None and old.stopped == 1500.0
    assert old.stop_reason == "engine restarted" and old.stopped_by == "aggregator"
    assert any("engine restarted" in text for text in run_log_texts(aggregator, r1))
    assert any(
        f"run {r1} closed: engine restarted" in e for e in errors(aggregator, engine.engine_id)
    )
    assert live.run_id is None
    # a later ControlState of the same session changes nothing more
    await engine.send(p.ControlState(seq=5, time=1600.0, run_id=None, state=p.SystemState.STOPPED))
    await engine.wait_ack(5)
    assert aggregator.ctx.storage.run_by_id(r1).stopped == 1500.0


async def test_engine_restarted_still_running_the_run_keeps_it_open(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    r1 = run_id()
    await engine.register("session-1")
    await engine.send(p.RunStarted(seq=1, time=1000.0, run_id=r1, started=1000.0, method_version=1))
    await engine.wait_ack(1)
    await engine.close()
    await engine.register("session-2")
    await engine.send(p.ControlState(seq=2, time=1500.0, run_id=r1, state=p.SystemState.PAUSED))
    await engine.wait_ack(2)
    assert aggregator.ctx.storage.run_by_id(r1).stopped is None  # type: ignore[union-attr]
    assert aggregator.ctx.live.engines[engine.engine_id].run_id == r1


async def test_live_changes_are_published_without_touching_ingest(
    aggregator: Aggregator, engine: RawEngine
) -> None:
    from aggregator.context import LIVE_HUB_KEY

    seen: list[tuple[str, object]] = []
    unsubscribe = aggregator.app[LIVE_HUB_KEY].subscribe(
        lambda topic, data: seen.append((topic, data))
    )
    try:
        await engine.register()
        unit = f"unit/{engine.engine_id}"
        await engine.send(tags(1, time.time(), None, sample=False, FT01=7.0))
        await engine.send(
            p.ControlState(seq=2, time=time.time(), state=p.SystemState.RUNNING, block="Load")
        )
        await engine.wait_ack(2)
        await engine.close()
        await until(
            lambda: any(
                topic == f"{unit}/tags" and data["tags"][0]["quality"] == "stale"  # type: ignore[index]
                for topic, data in seen
            ),
            5,
            "stale tags published on disconnect",
        )
    finally:
        unsubscribe()
    topics = [topic for topic, _ in seen]
    assert f"{unit}/tags" in topics and f"{unit}/control" in topics and "units" in topics
    first_tags = next(data for topic, data in seen if topic == f"{unit}/tags")
    assert first_tags["tags"][0]["value"] == 7.0  # type: ignore[index]


async def test_three_quick_reconnects_leave_the_newest_in_charge(aggregator: Aggregator) -> None:
    first = RawEngine(aggregator)
    clients = [
        first,
        RawEngine(aggregator, first.engine_id),
        RawEngine(aggregator, first.engine_id),
    ]
    try:
        await first.register()
        await first.send(tags(1, 1001.0, run_id()))
        await first.wait_ack(1)
        for client in clients[1:]:
            await client.connect()
        for client in clients[1:]:
            await client.send(register_frame(first.engine_id))
        await until(
            lambda: sum(c.closed.is_set() for c in clients) == 2, 10, "all but one link closed"
        )
        [newest] = [c for c in clients if not c.closed.is_set()]
        assert newest is not first
        await newest.wait_for(p.Registered)
        assert aggregator.ctx.connections[first.engine_id].ws is not None
        await newest.send(tags(2, 1002.0, None, sample=False))
        await newest.wait_ack(2)
    finally:
        for client in clients:
            await client.aclose()
