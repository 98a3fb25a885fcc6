"""A sample whose tick is not a whole microsecond must still be exported.

Found by the fault tests: the aggregator stores chunk times as whole microseconds but selects
samples with the exact float bounds of the run, so a first sample whose tick rounds *down* is
dropped from the CSV although it is stored and counted. Real engines have such ticks (scan times
from a float clock). Fixed by storing sample times to the microsecond; this test keeps it fixed.
"""

from __future__ import annotations

from pathlib import Path

from protocol.messages import RunStarted, RunStopped, TagsUpdated
from protocol.models import TagValue
from tests.faults.harness import AggregatorProcess, Api, ScriptedEngine, until


def tick_rounding_down(start: float) -> float:
    t = start
    while round(t * 1e6) / 1e6 >= t:
        t += 1.3e-7
    return t


async def test_first_sample_with_sub_microsecond_tick_is_exported(
    aggregator: AggregatorProcess, api: Api, token: str, tmp_path: Path
) -> None:
    engine = ScriptedEngine(aggregator.http.replace("http", "ws"), token, tmp_path / "engine")
    await engine.link.start()
    t0 = tick_rounding_down(1_700_000_000.0)
    engine.link.emit(RunStarted, time=t0, run_id="precise", started=t0, method_version=0)
    for n in range(1, 4):
        t = t0 + (n - 1) * 0.1
        engine.link.emit(
            TagsUpdated, time=t, run_id="precise", tags=[TagValue(name="Counter", value=n, tick=t)]
        )
    engine.link.emit(RunStopped, time=t0 + 1, run_id="precise", stopped=t0 + 1, reason="stop")
    await until(lambda: engine.link.connected, 15)
    await engine.link.stop(flush_timeout=15)
    assert engine.link.pending == 0
    assert (await api.run("precise"))["sample_count"] == 3
    assert await api.counter_values("precise") == [1, 2, 3]
