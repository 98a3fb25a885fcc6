"""Issue 6 (a): the network between engine and aggregator goes away and comes back.

The loopback proxy cuts the connection while the engine keeps producing; after the outage the
backlog is replayed and every sample must be stored exactly once, in order, and the run closed.
The full 60 s outage is marked slow (SETPOINT_FAULT_OUTAGE changes it); short variants always run.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    AggregatorProcess,
    Api,
    ScriptedEngine,
    TcpProxy,
    assert_run_complete,
    until,
)

LONG_OUTAGE = float(os.environ.get("SETPOINT_FAULT_OUTAGE", "60"))


async def run_outage(
    aggregator: AggregatorProcess, api: Api, token: str, data_dir: Path, mode: str, outage: float
) -> None:
    proxy = TcpProxy(aggregator.port)
    await proxy.start()
    engine = ScriptedEngine(f"ws://127.0.0.1:{proxy.port}", token, data_dir, rate=20.0)
    try:
        await engine.start("outage-run")
        await until(lambda: engine.link.connected, 15, "the engine to register")
        await engine.produce_for(1.0)
        await until(lambda: engine.link.acked_seq >= engine.link.high_water, 15, "acks")

        await proxy.cut(mode)
        await engine.produce_for(outage)
        assert not engine.link.connected, "the outage went unnoticed"
        backlog = engine.link.pending
        assert backlog >= outage * 20 * 0.5

        await proxy.restore()
        restored = time.monotonic()
        target = engine.link.high_water
        producer = asyncio.create_task(engine.produce_for(2.0))  # live data keeps coming
        await until(lambda: engine.link.connected, 30, "reconnection")
        reconnected = time.monotonic()
        await until(lambda: engine.link.acked_seq >= target, 60, "the backlog to be stored")
        caught_up = time.monotonic()
        await producer
        await until(lambda: engine.link.acked_seq >= engine.link.high_water, 30, "live acks")
        print(
            f"outage {outage:g} s ({mode}): backlog {backlog} messages; reconnected after "
            f"{reconnected - restored:.2f} s; backlog stored {caught_up - reconnected:.2f} s later "
            f"({outage / max(caught_up - reconnected, 1e-3):.0f}x real time)"
        )
        await engine.stop_run()
        assert engine.link.pending == 0
        await assert_run_complete(api, "outage-run", engine.produced)
    finally:
        await engine.link.stop(flush_timeout=0)
        await proxy.stop()


@pytest.mark.parametrize(("mode", "outage"), [("reset", 3.0), ("blackhole", 4.0)])
async def test_short_outage(
    aggregator: AggregatorProcess, api: Api, token: str, tmp_path: Path, mode: str, outage: float
) -> None:
    await run_outage(aggregator, api, token, tmp_path / "engine", mode, outage)


@pytest.mark.slow
@pytest.mark.timeout(LONG_OUTAGE + 120)
async def test_long_outage(
    aggregator: AggregatorProcess, api: Api, token: str, tmp_path: Path
) -> None:
    await run_outage(aggregator, api, token, tmp_path / "engine", "blackhole", LONG_OUTAGE)
