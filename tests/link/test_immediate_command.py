"""Issue 15 item 5: an operator command runs as soon as it arrives and what it changes is
reported at once, without waiting for the next grid scan; the extra scan loses and duplicates
nothing on the link.

The clock is a FakeClock that the test never advances after the first scans and no scan loop
runs: whatever the aggregator receives after a command was produced by the command itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.clock import FakeClock
from engine.engine import Engine
from engine.link.client import EngineLink
from engine.link.machine import LinkPolicy
from protocol.messages import ControlCommand, InvokeCommand, SetMethod
from protocol.models import ControlAction
from tests.engine.conftest import build_uod, shared_ureg
from tests.link.fake_aggregator import FakeAggregator, until

FAST = LinkPolicy(heartbeat_interval=0.5, backoff_initial=0.05, backoff_max=0.2, resend_grace=0.2)


def _tag_values(server: FakeAggregator, name: str) -> list[Any]:
    return [
        tag["value"]
        for frame in server.stored
        if frame["type"] == "TagsUpdated"
        for tag in frame["tags"]
        if tag["name"] == name
    ]


async def _engine_and_link(tmp_path: Path) -> tuple[Engine, EngineLink, FakeAggregator, FakeClock]:
    clock = FakeClock(start=10.0, wall_start=1_700_000_000.0)
    server = FakeAggregator()
    engine = Engine(build_uod(), clock=clock, computer_name="testpc", ureg=shared_ureg())
    link = EngineLink(server.url, "good-token", tmp_path, engine, policy=FAST)
    engine.sink = link  # as the CLI wires them (engine/cli_run.py)
    await server.start()
    await link.start()
    return engine, link, server, clock


async def test_an_injected_command_is_run_written_and_reported_at_once(tmp_path: Path) -> None:
    engine, link, server, clock = await _engine_and_link(tmp_path)
    try:
        engine.scan(clock.monotonic())
        clock.advance(0.1)
        engine.scan(clock.monotonic())
        await until(lambda: link.connected, what="registration")
        scans = engine.scans

        await server.send(InvokeCommand(id="c1", user="ann", pcode="PU01: 42 %"))
        await until(lambda: "c1" in server.results, what="the command's result")
        assert server.results["c1"]["ok"] is True
        await until(lambda: 42.0 in _tag_values(server, "PU01"), what="PU01 = 42 reported")
        assert engine.scans == scans + 1, "one scan at once, on the command's arrival"
        assert engine.output_values()["PU01"] == 42.0

        await server.send(ControlCommand(id="c2", user="ann", command=ControlAction.START))
        await until(lambda: "c2" in server.results, what="the start's result")
        await until(
            lambda: "Running" in _tag_values(server, "System State"), what="Running reported"
        )

        # A dry run changes nothing on the unit: no scan.
        scans = engine.scans
        await server.send(
            SetMethod(id="c3", user="ann", text="Mark: x", expected_version=0, dry_run=True)
        )
        await until(lambda: "c3" in server.results, what="the dry run's result")
        assert engine.scans == scans

        await until(lambda: link.acked_seq >= link.high_water, what="everything acknowledged")
        seqs = [frame["seq"] for frame in server.stored]
        assert seqs == list(range(1, len(seqs) + 1)), "lost or duplicated frames"
    finally:
        await link.stop(flush_timeout=1)
        await server.stop()


async def test_a_grid_scan_behind_an_immediate_one_does_not_go_back_in_time(
    tmp_path: Path,
) -> None:
    engine, link, server, clock = await _engine_and_link(tmp_path)
    try:
        engine.scan(clock.monotonic())
        await until(lambda: link.connected, what="registration")
        clock.advance(0.15)
        late_grid_point = clock.monotonic() - 0.1
        engine.inject("PU01: 10 %", "ann")
        engine.scan_now()
        engine.scan(late_grid_point)  # the runner's late grid point, before the immediate scan
        assert engine.output_values()["PU01"] == 10.0
        await until(lambda: link.acked_seq >= link.high_water, what="everything acknowledged")
        times = [frame["time"] for frame in server.stored if frame["type"] == "TagsUpdated"]
        assert times == sorted(times)
    finally:
        await link.stop(flush_timeout=1)
        await server.stop()
