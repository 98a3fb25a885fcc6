"""EngineLink over real loopback sockets against the stand-in aggregator."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.link.client import EngineLink
from engine.link.machine import LinkPolicy
from engine.link.outbox import Outbox
from protocol.messages import (
    ControlCommand,
    ForceLine,
    InvokeCommand,
    Ping,
    ResendRequest,
    SetMethod,
    TagsUpdated,
)
from protocol.models import ControlAction
from tests.link.fake_aggregator import FakeAggregator, until
from tests.link.helpers import FakeControl, sample_fields

FAST = LinkPolicy(heartbeat_interval=0.5, backoff_initial=0.05, backoff_max=0.2, resend_grace=0.2)


@pytest.fixture
async def aggregator() -> AsyncIterator[FakeAggregator]:
    server = FakeAggregator()
    await server.start()
    yield server
    await server.stop()


def make_link(
    url: str,
    tmp_path: Path,
    control: FakeControl | None = None,
    token: str = "good-token",
    policy: LinkPolicy = FAST,
) -> EngineLink:
    return EngineLink(url, token, tmp_path, control or FakeControl(), policy=policy)


async def test_delivers_in_order_exactly_once(aggregator: FakeAggregator, tmp_path: Path) -> None:
    link = make_link(aggregator.url, tmp_path)
    await link.start()
    try:
        await until(lambda: link.connected, what="registration")
        for n in range(1, 101):
            link.emit(TagsUpdated, **sample_fields(n))
        assert await link.wait_acked(100, 10)
        assert aggregator.values() == list(range(1, 101))
        assert aggregator.duplicates == 0
        assert link.pending == 0
        [register] = aggregator.registrations
        assert register["engine_id"] == "testpc/Test Unit"
        assert register["session_id"] == link.session_id
        assert aggregator.auth_headers == ["Bearer good-token"]
        assert not any(f["tags"][0]["historical"] for f in aggregator.stored)
    finally:
        await link.stop(flush_timeout=1)


async def test_emit_works_offline_and_backlog_arrives_historical(tmp_path: Path) -> None:
    server = FakeAggregator()
    link = make_link(server.url, tmp_path)
    for n in range(1, 11):
        link.emit(TagsUpdated, **sample_fields(n))  # before start: no loop, no aggregator
    await link.start()
    try:
        for n in range(11, 21):
            link.emit(TagsUpdated, **sample_fields(n))
        await until(lambda: link.connections == 0 and link.outbox.committed_seq == 20)
        assert link.pending == 20
        await server.start()
        assert await link.wait_acked(20, 10)
        assert server.values() == list(range(1, 21))
        assert all(f["tags"][0]["historical"] for f in server.stored)
        assert server.registrations[0]["last_seq"] == 20
    finally:
        await link.stop(flush_timeout=1)
        await server.stop()


async def test_wrong_token_is_refused_retried_and_logged_once_without_the_token(
    aggregator: FakeAggregator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="engine.link")
    link = make_link(aggregator.url, tmp_path, token="s3cret-wrong")
    await link.start()
    try:
        link.emit(TagsUpdated, **sample_fields(1))
        await until(lambda: aggregator.refused >= 3, what="three refused attempts")
        assert not link.connected
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert "refused the engine token (HTTP 401)" in errors[0].getMessage()
        assert "s3cret-wrong" not in caplog.text
        assert link.pending == 1, "nothing is lost while refused"
    finally:
        await link.stop(flush_timeout=0)


async def test_server_goes_away_and_comes_back(tmp_path: Path) -> None:
    """Resend in order after an outage: nothing lost, nothing stored twice."""
    server = FakeAggregator()
    await server.start()
    link = make_link(server.url, tmp_path)
    await link.start()
    produced = 0

    async def produce(count: int) -> None:
        nonlocal produced
        for _ in range(count):
            produced += 1
            link.emit(TagsUpdated, **sample_fields(produced))
            await asyncio.sleep(0.001)

    try:
        await until(lambda: link.connected)
        await produce(100)
        await until(lambda: server.high >= 50, what="some data stored before the outage")
        await server.stop()
        await until(lambda: not link.connected, what="the link to notice")
        await produce(200)
        await server.start()
        await until(lambda: link.connected, what="the link to register again")
        await produce(100)
        assert await link.wait_acked(produced, 15)
        assert server.values() == list(range(1, produced + 1))
        assert len(server.registrations) == 2
        assert server.registrations[1]["last_seq"] >= 300
        assert any(f["tags"][0]["historical"] for f in server.stored[100:300])
        assert not server.stored[-1]["tags"][0]["historical"]
        assert link.pending == 0
    finally:
        await link.stop(flush_timeout=1)
        await server.stop()


async def test_resend_request_is_answered_in_order(
    aggregator: FakeAggregator, tmp_path: Path
) -> None:
    link = make_link(aggregator.url, tmp_path)
    await link.start()
    try:
        await until(lambda: link.connected)
        aggregator.drop = {5, 6, 7}
        for n in range(1, 11):
            link.emit(TagsUpdated, **sample_fields(n))
        await until(lambda: 10 in aggregator.buffer, what="seq 10 to arrive after the gap")
        assert aggregator.high == 4
        await aggregator.send(ResendRequest(from_seq=5))
        assert await link.wait_acked(10, 10)
        assert aggregator.values() == list(range(1, 11))
    finally:
        await link.stop(flush_timeout=1)


async def test_commands_round_trip(aggregator: FakeAggregator, tmp_path: Path) -> None:
    control = FakeControl()
    link = make_link(aggregator.url, tmp_path, control)
    await link.start()
    try:
        await until(lambda: link.connected)
        link.emit(TagsUpdated, **sample_fields(1))
        await link.wait_acked(1, 10)

        await aggregator.send(ControlCommand(id="c1", user="ann", command=ControlAction.START))
        await until(lambda: "c1" in aggregator.results)
        assert control.calls == [("control", (ControlAction.START, "ann"))]
        assert aggregator.results["c1"] == {
            "type": "CommandResult",
            "id": "c1",
            "seq": 1,
            "ok": True,
            "error": None,
            "data": None,
        }

        control.refuse = "the method has errors: line 3"
        await aggregator.send(InvokeCommand(id="c2", user="ann", pcode="Mark: A"))
        await until(lambda: "c2" in aggregator.results)
        assert aggregator.results["c2"]["ok"] is False
        assert aggregator.results["c2"]["error"] == "the method has errors: line 3"

        control.refuse = None
        await aggregator.send(
            SetMethod(id="c3", user="bob", text="Mark: B", expected_version=0, line_ids=[None])
        )
        await until(lambda: "c3" in aggregator.results)
        assert aggregator.results["c3"]["ok"] is True
        assert aggregator.results["c3"]["data"] == {
            "version": 1,
            "findings": [],
            "findings_omitted": 0,
        }
        assert control.calls[-1] == ("set_method", ("Mark: B", 0, [None], "bob"))
        await aggregator.send(
            SetMethod(id="c3b", user="bob", text="Mark: C", expected_version=0, line_ids=None)
        )
        await until(lambda: "c3b" in aggregator.results)
        stale = aggregator.results["c3b"]
        assert (stale["ok"], stale["error"]) == (False, "method version is 1, not 0")
        assert stale["data"] == {"current_version": 1}

        control.crash = True
        await aggregator.send(ForceLine(id="c4", user="bob", run_log_id="r7"))
        await until(lambda: "c4" in aggregator.results)
        assert aggregator.results["c4"]["ok"] is False
        assert "ZeroDivisionError" in aggregator.results["c4"]["error"]

        await aggregator.send(Ping(id="p1", time=0.0))
        await until(lambda: "p1" in aggregator.results)
        assert aggregator.results["p1"]["ok"] is True
        assert link.connected, "a failing command never kills the link"
        assert len(aggregator.registrations) == 1
    finally:
        await link.stop(flush_timeout=1)


async def test_silent_aggregator_is_closed_after_three_intervals_and_reconnected(
    tmp_path: Path,
) -> None:
    server = FakeAggregator(heartbeat_interval=0.2)
    server.silent_connections = 1  # the first connection registers, then hears nothing
    await server.start()
    link = make_link(server.url, tmp_path)
    await link.start()
    try:
        link.emit(TagsUpdated, **sample_fields(1))
        await until(lambda: len(server.registrations) == 2, what="a second connection")
        assert await link.wait_acked(1, 10)
        heartbeats = [f for f in server.received if f["type"] == "Heartbeat"]
        assert heartbeats and heartbeats[0]["seq"] == 1
    finally:
        await link.stop(flush_timeout=1)
        await server.stop()


async def test_stop_flushes_and_keeps_what_could_not_be_delivered(tmp_path: Path) -> None:
    server = FakeAggregator()
    link = make_link(server.url, tmp_path)
    await link.start()
    for n in range(1, 6):
        link.emit(TagsUpdated, **sample_fields(n))
    await link.stop(flush_timeout=0.2)  # nobody listening
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    assert outbox.pending == 5
    outbox.close()

    await server.start()
    try:
        link = make_link(server.url, tmp_path)
        await link.start()
        link.emit(TagsUpdated, **sample_fields(6))
        await link.stop(flush_timeout=10)  # returns once everything is acknowledged
        assert server.values() == [1, 2, 3, 4, 5, 6]
    finally:
        await server.stop()


async def test_emit_from_another_thread(aggregator: FakeAggregator, tmp_path: Path) -> None:
    link = make_link(aggregator.url, tmp_path)
    await link.start()
    try:

        def scan() -> None:
            for n in range(1, 51):
                link.emit(TagsUpdated, **sample_fields(n))

        thread = threading.Thread(target=scan)
        thread.start()
        await asyncio.to_thread(thread.join, 10)
        assert await link.wait_acked(50, 10)
        assert aggregator.values() == list(range(1, 51))
    finally:
        await link.stop(flush_timeout=1)


async def test_emit_after_stop_is_kept_for_the_next_start(tmp_path: Path) -> None:
    server = FakeAggregator()
    await server.start()
    try:
        link = make_link(server.url, tmp_path)
        await link.start()
        link.emit(TagsUpdated, **sample_fields(1))
        await link.stop(flush_timeout=10)
        assert not link.connected
        link.emit(TagsUpdated, **sample_fields(2))  # the engine reporting while it shuts down
        assert link.pending == 1
        await link.start()
        await link.stop(flush_timeout=10)
        assert server.values() == [1, 2]
    finally:
        await server.stop()


@pytest.mark.parametrize("slow", ["read", "rebase"])
async def test_a_slow_outbox_does_not_block_the_event_loop(
    aggregator: FakeAggregator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: str
) -> None:
    """The loop also runs the engine's scan: while the outbox waits (here on an event; in life a
    busy disk), other tasks run and emit() goes on. On the event loop this read would wait out
    its whole timeout, since nothing could set the event."""
    if slow == "rebase":
        aggregator.high = 50  # a fresh data directory: the registration renumbers
    link = make_link(aggregator.url, tmp_path)
    entered, release = threading.Event(), threading.Event()
    released_in_time: list[bool] = []
    real = getattr(link.outbox, slow)

    def wait_then_run(*args: Any) -> Any:
        entered.set()
        released_in_time.append(release.wait(5))
        return real(*args)

    monkeypatch.setattr(link.outbox, slow, wait_then_run)
    for n in range(1, 6):
        link.emit(TagsUpdated, **sample_fields(n))
    await link.start()
    try:
        assert await asyncio.to_thread(entered.wait, 10)
        other = asyncio.Event()
        asyncio.get_running_loop().call_soon(other.set)
        async with asyncio.timeout(2):
            await other.wait()
        link.emit(TagsUpdated, **sample_fields(6))
        release.set()
        assert await link.wait_acked(56 if slow == "rebase" else 6, 10)
        assert aggregator.values() == [1, 2, 3, 4, 5, 6]
        assert released_in_time and all(released_in_time)
    finally:
        release.set()
        await link.stop(flush_timeout=1)
