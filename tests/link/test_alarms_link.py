"""Alarms over the real link: raised while the aggregator is away, kept in the outbox and
delivered in order when it comes; an AlarmCommand from the aggregator acts on the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.clock import FakeClock
from engine.engine import Engine
from engine.link.client import EngineLink
from engine.link.machine import LinkPolicy
from protocol.messages import AlarmCommand
from protocol.models import AlarmAction
from tests.engine.conftest import build_uod, shared_ureg
from tests.link.fake_aggregator import FakeAggregator, until

FAST = LinkPolicy(heartbeat_interval=0.5, backoff_initial=0.05, backoff_max=0.2, resend_grace=0.2)


def _engine(clock: FakeClock) -> Engine:
    uod = build_uod(lambda u: u.alarm("PT01 high", "PT01 > 3 bar", priority="high"))
    return Engine(uod, clock=clock, computer_name="testpc", ureg=shared_ureg())


def _alarm_frames(server: FakeAggregator) -> list[dict[str, Any]]:
    return [f for f in server.stored if f["type"] == "AlarmsUpdated"]


async def test_alarms_wait_in_the_outbox_and_commands_come_back(tmp_path: Path) -> None:
    clock = FakeClock(start=10.0, wall_start=1_700_000_000.0)
    server = FakeAggregator()
    engine = _engine(clock)
    link = EngineLink(server.url, "good-token", tmp_path, engine, policy=FAST)
    engine.sink = link  # as the CLI wires them (engine/cli_run.py)
    await link.start()
    try:
        engine.scan(clock.monotonic())  # snapshot
        engine.simulate("PT01", 4.0, "bar")
        clock.advance(0.1)
        engine.scan(clock.monotonic())  # raised
        assert link.connections == 0
        await until(lambda: link.pending >= 2, what="alarms in the outbox")

        await server.start()
        await until(lambda: len(_alarm_frames(server)) >= 2, what="alarms delivered")
        snapshot, raised = _alarm_frames(server)[:2]
        assert snapshot["snapshot"] is True
        [event] = raised["events"]
        assert (event["name"], event["state"], event["value"]) == ("PT01 high", "unack_active", 4.0)

        await server.send(
            AlarmCommand(id="a1", user="ann", alarm="PT01 high", action=AlarmAction.ACK)
        )
        await until(lambda: "a1" in server.results, what="ack result")
        assert server.results["a1"]["ok"] is True
        await until(lambda: len(_alarm_frames(server)) >= 3, what="ack delivered")
        [acked] = _alarm_frames(server)[2]["events"]
        assert (acked["state"], acked["cause"], acked["user"]) == ("ack_active", "ack", "ann")

        await server.send(
            AlarmCommand(id="a2", user="ann", alarm="PT01 high", action=AlarmAction.SHELVE)
        )
        await until(lambda: "a2" in server.results, what="shelve result")
        refused = server.results["a2"]
        assert refused["ok"] is False
        assert refused["error"] == "shelving alarm 'PT01 high' needs a reason"
    finally:
        await link.stop(flush_timeout=1)
        await server.stop()
