"""Demand-driven live rate over real sockets: a real aggregator (in this process), a real engine
(the toy chromatography unit on a fake clock, scanned here, 5x faster than real time) linked to
it by EngineLink, and a /ws client.

Frames are counted where the aggregator publishes them (its LiveHub): a live update is a
TagsUpdated without a sample. Waits have deadlines and no test depends on how fast the machine
is: counts are per data-log interval of engine time.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import protocol as p
from engine.clock import FakeClock
from engine.engine import Engine
from engine.link.client import EngineLink
from engine.link.machine import LinkPolicy
from tests.api.conftest import Api
from tests.api.fake_engine import FakeEngine, wait_online
from tests.engine.conftest import build_uod, shared_ureg
from tests.link.fake_aggregator import FakeAggregator, until
from tests.live.conftest import WsClient

FAST = LinkPolicy(heartbeat_interval=0.5, backoff_initial=0.05, backoff_max=0.2, resend_grace=0.2)
STEP = 0.02
"""Real seconds between scans; each advances the engine clock by its 0.1 s scan interval."""


@dataclass
class Counts:
    """What the aggregator published for the unit, in order: 'live' or 'sample'."""

    kinds: list[str] = field(default_factory=list)

    def __call__(self, topic: str, data: Any) -> None:
        if topic.endswith("/tags") and isinstance(data, dict) and "sample" in data:
            self.kinds.append("sample" if data["sample"] is not None else "live")

    def mark(self) -> int:
        return len(self.kinds)

    def samples_since(self, mark: int) -> int:
        return self.kinds[mark:].count("sample")

    def live_per_interval(self, mark: int) -> list[int]:
        """Live updates between consecutive samples after `mark` (whole intervals only)."""
        out: list[int] = []
        current: int | None = None
        for kind in self.kinds[mark:]:
            if kind == "sample":
                if current is not None:
                    out.append(current)
                current = 0
            elif current is not None:
                current += 1
        return out


@dataclass
class Unit:
    engine: Engine
    link: EngineLink
    clock: FakeClock
    counts: Counts
    samples: list[dict[str, Any]]
    """Every sample the engine emitted (the link's outbox gets exactly these)."""

    @property
    def id(self) -> str:
        return f"testpc/{self.engine.uod.name}"

    async def intervals(self, n: int) -> int:
        """Wait for `n` more samples; returns the mark from before them."""
        mark = self.counts.mark()
        await until(lambda: self.counts.samples_since(mark) >= n + 1, 30.0, f"{n} samples")
        return mark


async def _scan_forever(engine: Engine, clock: FakeClock) -> None:
    while True:
        clock.advance(engine.scan_interval)
        engine.scan(clock.monotonic())
        await asyncio.sleep(STEP)


@contextlib.asynccontextmanager
async def running_unit(api: Api, tmp_path: Path) -> AsyncIterator[Unit]:
    clock = FakeClock(start=10.0, wall_start=1_700_000_000.0)
    engine = Engine(
        build_uod(), clock=clock, computer_name="testpc", ureg=shared_ureg(), method="Wait: 1 h"
    )
    link = EngineLink(
        api.url.replace("http", "ws"), api.agg.token, tmp_path / "engine", engine, policy=FAST
    )
    samples: list[dict[str, Any]] = []
    emit = link.emit

    def recording_emit(kind: type[Any], /, **fields: Any) -> None:
        if kind is p.TagsUpdated and fields.get("sample"):
            samples.append(fields)
        emit(kind, **fields)

    engine.sink = link  # as engine/cli_run.py wires them
    link.emit = recording_emit  # type: ignore[method-assign]
    counts = Counts()
    unsubscribe = api.agg.ctx.hub.subscribe(counts)
    api.agg.ctx.live.demand.book.hold = 0.3  # the debounce, short for the test
    engine.apply_safe_outputs(clock.monotonic(), remember=False)
    engine.scan(clock.monotonic())
    await link.start()
    scanner = asyncio.create_task(_scan_forever(engine, clock))
    unit = Unit(engine, link, clock, counts, samples)
    try:
        await wait_online(api.agg, unit.id)
        engine.inject("Inlet: VA01", "ann")
        engine.inject("PU01: 50 %", "ann")
        engine.control("Start", "ann")
        yield unit
    finally:
        scanner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scanner
        await link.stop(flush_timeout=5)
        unsubscribe()


async def _watcher(api: Api, unit: Unit, topic: str = "tags") -> WsClient:
    ws = await WsClient(api, "viewer").connect()
    await ws.send({"action": "subscribe", "topic": f"unit/{unit.id}/{topic}"})
    await ws.wait(lambda f: f.get("kind") == "snapshot", what="the snapshot")
    return ws


async def _stored_values(api: Api, run_id: str, tag: str) -> list[float]:
    status, text = await api.call("GET", f"/api/runs/{run_id}/csv")
    assert status == 200, text
    rows = [r for r in csv.reader(io.StringIO(str(text))) if r and not r[0].startswith("#")]
    column = next(i for i, name in enumerate(rows[0]) if name.split(" [")[0] == tag)
    return [float(r[column]) for r in rows[1:] if r[column] != ""]


async def test_the_rate_follows_the_watchers_and_storage_does_not(api: Api, tmp_path: Path) -> None:
    async with running_unit(api, tmp_path) as unit:
        demand = api.agg.ctx.live.demand
        await until(lambda: demand.book.told(unit.id) is False, 10.0, "told unwatched")
        await until(lambda: not unit.link.live_watched, 10.0, "the engine unwatched")
        mark = await unit.intervals(3)
        assert unit.counts.live_per_interval(mark) == [0, 0, 0], "samples only"

        ws = await _watcher(api, unit)
        await until(lambda: unit.link.live_watched, 10.0, "the engine watched")
        ws_mark = len(ws.frames)
        mark = await unit.intervals(3)
        per_interval = unit.counts.live_per_interval(mark)
        assert all(n >= 8 for n in per_interval), per_interval  # 9 scans between samples
        changes = [
            f
            for f in ws.frames[ws_mark:]
            if f.get("kind") == "change" and f.get("topic", "").endswith("/tags")
        ]
        assert len(changes) >= 3 * 3, "the watcher sees several updates per data-log interval"

        await ws.send({"action": "unsubscribe", "topic": f"unit/{unit.id}/tags"})
        await until(lambda: not unit.link.live_watched, 10.0, "unwatched after the hold")
        await unit.intervals(1)  # what was in flight
        mark = await unit.intervals(3)
        assert unit.counts.live_per_interval(mark) == [0, 0, 0]

        await ws.send({"action": "subscribe", "topic": f"unit/{unit.id}/control"})
        await until(lambda: unit.link.live_watched, 10.0, "control watchers count too")
        await ws.close()  # a disconnect ends the interest like an unsubscribe
        await until(lambda: not unit.link.live_watched, 10.0, "unwatched after the disconnect")

        run_id = unit.engine.interpreter.run_id
        unit.engine.control("Stop", "ann")
        await until(
            lambda: unit.link.acked_seq >= unit.link.high_water and unit.link.pending == 0,
            10.0,
            "everything acknowledged",
        )
        await unit.intervals(1)
        await until(lambda: unit.link.acked_seq >= unit.link.high_water, 10.0, "acknowledged")
    emitted = [
        t.value
        for s in unit.samples
        if s["run_id"] == run_id
        for t in s["tags"]
        if t.name == "Accumulated Volume"
    ]
    stored = await _stored_values(api, run_id, "Accumulated Volume")
    assert stored == emitted, "every sample stored once, whatever the demand"


async def test_a_reconnect_is_told_the_demand_of_the_moment(api: Api, tmp_path: Path) -> None:
    async with running_unit(api, tmp_path) as unit:
        demand = api.agg.ctx.live.demand
        await until(lambda: not unit.link.live_watched, 10.0, "the engine unwatched")
        ws = await _watcher(api, unit)
        await until(lambda: unit.link.live_watched, 10.0, "the engine watched")
        connections = unit.link.connections
        api.agg.ctx.connections[unit.id].close("test: the link is lost")
        await until(
            lambda: unit.link.connections > connections and unit.link.connected, 10.0, "reconnected"
        )
        await until(lambda: demand.book.told(unit.id) is True, 10.0, "told again")
        await until(lambda: unit.link.live_watched, 10.0, "the engine watched again")
        await unit.intervals(1)  # the resent backlog and what was in flight
        mark = await unit.intervals(2)
        assert all(n >= 8 for n in unit.counts.live_per_interval(mark)), "still at scan rate"

        await ws.close()
        await until(lambda: not unit.link.live_watched, 10.0, "unwatched")
        connections = unit.link.connections
        api.agg.ctx.connections[unit.id].close("test: the link is lost again")
        await until(
            lambda: unit.link.connections > connections and unit.link.connected, 10.0, "reconnected"
        )
        await until(lambda: not unit.link.live_watched, 10.0, "told unwatched at registration")
        await unit.intervals(1)
        mark = await unit.intervals(2)
        assert unit.counts.live_per_interval(mark) == [0, 0]


async def test_only_engines_of_1_4_or_later_are_told(api: Api) -> None:
    old = FakeEngine(api.agg, engine_id="pc/old")
    new = FakeEngine(api.agg, engine_id="pc/new")
    start = old.start

    async def start_as_1_3() -> p.Registered:
        real = p.PROTOCOL_VERSION
        p.PROTOCOL_VERSION = "1.3"  # what FakeEngine.start registers with
        try:
            return await start()
        finally:
            p.PROTOCOL_VERSION = real

    await start_as_1_3()
    await new.start()
    try:
        await wait_online(api.agg, "pc/old")
        ws = WsClient(api, "viewer")
        await ws.connect()
        for unit in ("pc/old", "pc/new"):
            await ws.send({"action": "subscribe", "topic": f"unit/{unit}/tags"})
        await until(
            lambda: (
                [m.watched for m in new.received if isinstance(m, p.LiveDemand)] == [False, True]
            ),
            10.0,
            "the 1.4 engine told unwatched at registration, then watched",
        )
        await asyncio.sleep(0.2)
        assert not [m for m in old.received if isinstance(m, p.LiveDemand)], "1.3: never sent"
        assert not [m for m in old.received if isinstance(m, p.ProtocolErrorMessage)]
        await ws.close()
    finally:
        await old.aclose()
        await new.aclose()


async def test_an_engine_under_an_older_aggregator_sends_every_scan(tmp_path: Path) -> None:
    """An aggregator before 1.4 never sends LiveDemand (the fake one, registering as 1.0,
    neither): full rate, and every live update a stored TagsUpdated (no LiveTags before 1.5)."""
    clock = FakeClock(start=10.0, wall_start=1_700_000_000.0)
    server = FakeAggregator()
    engine = Engine(build_uod(), clock=clock, computer_name="testpc", ureg=shared_ureg())
    link = EngineLink(server.url, "good-token", tmp_path, engine, policy=FAST)
    engine.sink = link
    await server.start()
    await link.start()
    try:
        engine.inject("Inlet: VA01", "ann")
        engine.inject("PU01: 50 %", "ann")
        engine.scan(clock.monotonic())
        await until(lambda: link.connected, what="registration")
        for _ in range(25):
            # A scan while the link is down (a busy machine can miss a heartbeat) is held for
            # the next sample by design; this test is about scans while registered.
            await until(lambda: link.connected, what="registration")
            clock.advance(0.1)
            engine.scan(clock.monotonic())
            await asyncio.sleep(0)

        # A frame every scan: live updates, and at the data-log interval (and after a
        # reconnect on a busy machine) a sample instead. Held scans would give about 3.
        def updates() -> list[dict[str, Any]]:
            return [f for f in server.stored if f["type"] == "TagsUpdated"]

        await until(lambda: len(updates()) >= 25, what="a frame every scan")
        assert any(not f["sample"] for f in updates()), "live updates, not only samples"
        assert link.live_tags_sent == 0
    finally:
        await link.stop(flush_timeout=1)
        await server.stop()


def _ft01(frame: dict[str, Any], unit: str) -> list[float]:
    if frame.get("kind") != "change" or frame.get("topic") != f"unit/{unit}/tags":
        return []
    return [t["value"] for t in frame["data"] if t["name"] == "FT01"]


async def test_live_tags_reach_watchers_unstored_and_unacknowledged(api: Api) -> None:
    """Protocol 1.5 at the aggregator: a LiveTags frame updates the live view and its watchers
    at once, an older value (by tick) never replaces a newer one, nothing is stored or
    acknowledged, and a malformed one is refused with the link kept up."""
    engine = FakeEngine(api.agg, engine_id="pc/live")
    registered = await engine.start()
    assert registered.protocol_version == p.PROTOCOL_VERSION == "1.5"
    ws = WsClient(api, "viewer")
    try:
        await wait_online(api.agg, "pc/live")
        await ws.connect()
        await ws.send({"action": "subscribe", "topic": "unit/pc/live/tags"})
        await ws.wait(lambda f: f.get("kind") == "snapshot", what="the snapshot")
        acks_before = len(engine.of_type(p.Ack))

        def live(value: float, tick: float) -> p.LiveTags:
            return p.LiveTags(time=tick, tags=[p.TagValue(name="FT01", value=value, tick=tick)])

        t = time.time()
        await engine.send(live(42.0, t))
        await ws.wait(lambda f: _ft01(f, "pc/live") == [42.0], what="42 at the watcher")
        await engine.send(live(7.0, t - 1.0))  # older than what is shown
        await engine.send(live(43.0, t + 1.0))
        await ws.wait(lambda f: _ft01(f, "pc/live") == [43.0], what="43 at the watcher")
        seen = [v for f in ws.frames for v in _ft01(f, "pc/live")]
        assert seen == [42.0, 43.0], "the older value was dropped, not shown"
        assert api.agg.ctx.live.engines["pc/live"].tags["FT01"].value == 43.0

        await engine.send_raw('{"type": "LiveTags", "time": 1.0, "tags": []}')
        error = await engine.wait_for(p.ProtocolErrorMessage)
        assert error.rule == 11 and not error.fatal and "tags" in error.message
        await engine.send(live(44.0, t + 2.0))
        await ws.wait(lambda f: _ft01(f, "pc/live") == [44.0], what="44: the link stayed up")

        seq = await engine.tags(None, t + 3.0, FT01=45.0)  # a stored sample, acknowledged
        session = api.agg.ctx.connections["pc/live"].session
        assert session is not None and session.accepted == seq, "LiveTags take no seq"
        acks = [a.seq for a in engine.of_type(p.Ack)[acks_before:]]
        assert acks and set(acks) == {seq}, "LiveTags are never acknowledged"
    finally:
        await ws.close()
        await engine.aclose()


async def test_a_watched_engine_sends_live_tags_past_its_outbox(api: Api, tmp_path: Path) -> None:
    """Protocol 1.5 at the engine: while watched by a 1.5 aggregator, a scan's live changes go as
    LiveTags without a seq; only when a stored message of its own is still on its way to the
    disk do they go through the outbox, so every live scan is sent one way or the other."""
    async with running_unit(api, tmp_path) as unit:
        ws = await _watcher(api, unit)
        await until(lambda: unit.link.live_watched, 10.0, "the engine watched")
        await unit.intervals(1)  # the snapshot and what was in flight
        enqueued: list[tuple[str, bool]] = []
        enqueue = unit.link.outbox.enqueue

        def counting(kind: type[Any], fields: dict[str, Any]) -> int:
            enqueued.append((kind.__name__, bool(fields.get("sample", True))))
            return enqueue(kind, fields)

        unit.link.outbox.enqueue = counting  # type: ignore[method-assign]
        sent = unit.link.live_tags_sent
        mark = await unit.intervals(3)
        live_tags = unit.link.live_tags_sent - sent
        stored_live = enqueued.count(("TagsUpdated", False))
        per_interval = unit.counts.live_per_interval(mark)
        assert all(n >= 8 for n in per_interval), per_interval
        assert live_tags >= 9, f"{live_tags} LiveTags, {stored_live} through the outbox"
        assert live_tags + stored_live >= sum(per_interval)
        assert enqueued.count(("TagsUpdated", True)) >= 3, "samples still go the stored way"
        await ws.close()
