"""Several aggregator URLs (issue 21 item 2): the link tries them in order, moves to the next
when its link is lost, and resends from the high-water mark the next one reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.link.client import EngineLink
from protocol.messages import TagsUpdated
from tests.link.fake_aggregator import FakeAggregator, free_port, until
from tests.link.helpers import FakeControl, sample_fields
from tests.link.test_client import FAST


def test_needs_at_least_one_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one aggregator URL"):
        EngineLink([], "good-token", tmp_path, FakeControl())


def test_the_web_address_means_the_same_server_and_other_schemes_are_refused(
    tmp_path: Path,
) -> None:
    """The websockets client accepts only ws:// and wss://: an http:// address once left the
    link's task dead without a word, the engine never online."""
    link = EngineLink(
        ["http://127.0.0.1:9800/", "https://agg.site:443/engine/ws"],
        "good-token",
        tmp_path,
        FakeControl(),
    )
    assert link.urls == ["ws://127.0.0.1:9800/engine/ws", "wss://agg.site:443/engine/ws"]
    with pytest.raises(ValueError, match=re.escape("ws://HOST:PORT, not 'tcp://127.0.0.1:9800'")):
        EngineLink("tcp://127.0.0.1:9800", "good-token", tmp_path, FakeControl())


async def test_an_unreachable_first_aggregator_is_skipped(tmp_path: Path) -> None:
    dead = f"ws://127.0.0.1:{free_port()}"
    live = FakeAggregator()
    await live.start()
    link = EngineLink([dead, live.url], "good-token", tmp_path, FakeControl(), policy=FAST)
    await link.start()
    try:
        link.emit(TagsUpdated, **sample_fields(1))
        assert await link.wait_acked(1, 10)
        assert link.url == f"{live.url}/engine/ws"
        assert live.values() == [1]
    finally:
        await link.stop(flush_timeout=1)
        await live.stop()


async def test_fails_over_to_the_next_aggregator_and_resends_nothing_twice(
    tmp_path: Path,
) -> None:
    first, second = FakeAggregator(), FakeAggregator()
    await first.start()
    await second.start()
    link = EngineLink(
        f"{first.url},{second.url}".split(","), "good-token", tmp_path, FakeControl(), policy=FAST
    )
    await link.start()
    try:
        for n in range(1, 11):
            link.emit(TagsUpdated, **sample_fields(n))
        assert await link.wait_acked(10, 10)
        second.high = first.high  # one shared database: the second has what the first stored
        await first.stop()
        for n in range(11, 21):
            link.emit(TagsUpdated, **sample_fields(n))
        assert await link.wait_acked(20, 10)
        await until(lambda: link.connected, what="the link on the second aggregator")
        assert first.values() == list(range(1, 11))
        assert second.values() == list(range(11, 21))
        assert second.duplicates == 0
        assert [r["session_id"] for r in second.registrations] == [link.session_id]
        assert second.registrations[0]["last_seq"] >= 10
    finally:
        await link.stop(flush_timeout=1)
        await second.stop()
