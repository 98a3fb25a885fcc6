"""Issue 6 (b): the aggregator is killed with SIGKILL mid-run and restarted.

What it acknowledged was committed before the Ack (rule 5); what it had not acknowledged is still
in the engine's outbox and is resent after the restart (rule 6). The engine keeps producing the
whole time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.faults.harness import AggregatorProcess, Api, ScriptedEngine, assert_run_complete, until


async def test_aggregator_killed_mid_run_and_restarted(
    aggregator: AggregatorProcess, token: str, tmp_path: Path
) -> None:
    engine = ScriptedEngine(f"ws://127.0.0.1:{aggregator.port}", token, tmp_path / "engine")
    try:
        await engine.start("crash-run")
        await until(lambda: engine.link.connected, 15, "registration")
        await engine.produce_for(1.5)
        await until(lambda: engine.link.acked_seq > 10, 15, "data stored before the kill")

        for _ in range(2):  # twice: the second kill hits an aggregator that has replayed data
            aggregator.kill()
            await engine.produce_for(1.0)
            assert not engine.link.connected
            await asyncio.gather(asyncio.to_thread(aggregator.start), engine.produce_for(2.0))
            await until(lambda: engine.link.connected, 30, "reconnection after the restart")
            await engine.produce_for(0.5)

        await engine.stop_run()
        assert engine.link.pending == 0
    finally:
        await engine.link.stop(flush_timeout=0)

    api = Api(aggregator.http)
    try:
        await api.login()
        await assert_run_complete(api, "crash-run", engine.produced)
    finally:
        await api.close()
