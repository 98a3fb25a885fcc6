"""Issue 6 (a) end to end: the real `setpoint-engine run` (example Vessel unit, its method started)
reports through the cutting proxy to a real aggregator; the network goes away for a few seconds.

The real engine's samples are not numbered by the test, so completeness is checked through the
stored run: data-log samples every second with no hole across the outage, no gap or integrity
error recorded, and the run closed by the engine's Stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import itertools
import os
import signal
from pathlib import Path

from tests.faults.harness import BIN, ROOT, AggregatorProcess, Api, TcpProxy, until

OUTAGE = 4.0


async def test_real_engine_through_an_outage(
    aggregator: AggregatorProcess, api: Api, token: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(aggregator.port)
    await proxy.start()
    engine = await asyncio.create_subprocess_exec(
        str(BIN / "setpoint-engine"),
        "run",
        "--uod",
        "uod_examples/vessel.py",
        "--method",
        "uod_examples/vessel.pcode",
        "--start",
        "--aggregator",
        f"ws://127.0.0.1:{proxy.port}",
        "--token",
        token,
        "--data-dir",
        str(tmp_path / "engine"),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def run_listed() -> bool:
            return bool(await api.runs())

        async with asyncio.timeout(30):
            while not await run_listed():
                await asyncio.sleep(0.1)
        [listed] = await api.runs()

        async def stored_run_times() -> list[float]:
            async with api.session.get(
                f"{api.base}/api/runs/{listed['id']}/csv", headers=api.headers
            ) as resp:
                text = await resp.text()
            rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].startswith("#")]
            return [float(r[1]) for r in rows[1:]]

        async def stored_until(run_time: float) -> float:
            """Polls the stored run until it holds a sample at `run_time` or later: the engine's
            own scan decides when that is. Returns the latest stored run time."""
            async with asyncio.timeout(30):
                while True:
                    times = await stored_run_times()
                    if times and times[-1] >= run_time:
                        return times[-1]
                    await asyncio.sleep(0.1)

        first = await stored_until(0.0)
        at_cut = await stored_until(first + 2.0)  # two data-log samples stored online
        await proxy.cut("reset")
        await asyncio.sleep(OUTAGE)  # the outage itself (the fault), not a wait for a result
        await proxy.restore()
        await until(lambda: proxy.connections >= 2, 30, "the engine to reconnect")
        # The samples made during the outage, replayed, and two more online.
        await stored_until(at_cut + OUTAGE + 2.0)
        os.kill(engine.pid, signal.SIGTERM)
        async with asyncio.timeout(30):
            _, err = await engine.communicate()
        assert engine.returncode == 0, err.decode()[-2000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(engine.pid, signal.SIGKILL)
        await engine.wait()
        await proxy.stop()

    [run] = await api.runs()
    detail = await api.run(run["id"])
    assert detail["stopped"] is not None, "the run was left open"
    assert detail["stop_reason"] == "Stop"
    problems = [e["message"] for e in detail["errors"] if e["source"] == "link"]
    assert not problems, problems
    async with api.session.get(f"{api.base}/api/runs/{run['id']}/csv", headers=api.headers) as resp:
        text = await resp.text()
    rows = [r for r in csv.reader(io.StringIO(text)) if r and not r[0].startswith("#")][1:]
    run_times = [float(r[1]) for r in rows]
    assert run_times == sorted(run_times)
    assert run_times[-1] - run_times[0] >= OUTAGE + 3.0
    holes = [b - a for a, b in itertools.pairwise(run_times) if b - a > 1.5]
    assert not holes, f"the stored run has holes (s): {holes}"
