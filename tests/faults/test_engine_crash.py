"""Issue 6 (c): the engine is killed with SIGKILL mid-run, while offline, and restarted.

Everything the engine reported as flushed before the kill must reach the aggregator through the
restarted engine's outbox, exactly once and in order. The killed run must not stay open: the
restarted engine starts a new run, and the aggregator closes the old one with "engine restarted"
in its run log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

from tests.faults.harness import ROOT, AggregatorProcess, Api, TcpProxy, assert_run_complete, until


class EngineProcess:
    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.flushed = 0
        self.last_line = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.faults.engine_process",
            *self.args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )

    async def read_until(self, predicate: str | int, timeout: float = 30.0) -> None:
        """Read `flushed N` lines until N >= predicate (int) or a line starts with it (str)."""
        assert self.proc is not None and self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.proc.stdout.readline()).decode().strip()
                assert line, f"engine process ended early (last line {self.last_line!r})"
                self.last_line = line
                if line.startswith("flushed "):
                    self.flushed = int(line.split()[1])
                    if isinstance(predicate, int) and self.flushed >= predicate:
                        return
                elif isinstance(predicate, str) and line.startswith(predicate):
                    return

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)

    async def wait(self) -> None:
        if self.proc is not None:
            await asyncio.wait_for(self.proc.wait(), 15)


async def test_engine_killed_mid_run_and_restarted(
    aggregator: AggregatorProcess, api: Api, token: str, tmp_path: Path
) -> None:
    proxy = TcpProxy(aggregator.port)
    await proxy.start()
    url = f"ws://127.0.0.1:{proxy.port}"
    data_dir = str(tmp_path / "engine")
    first = EngineProcess(url, token, data_dir, "killed-run")
    second = EngineProcess(url, token, data_dir, "next-run", "--stop-after", "30")
    try:
        await first.start()
        await first.read_until(30)
        await until(lambda: proxy.connections >= 1, 15, "the engine to connect")
        await proxy.cut("reset")  # from here on the samples only exist in the engine's outbox
        await first.read_until(first.flushed + 40)
        first.kill()
        await first.wait()
        flushed_before_kill = first.flushed
        await proxy.restore()

        await second.start()
        await second.read_until("done", timeout=60)
        assert second.last_line == "done pending=0"
        await second.wait()
    finally:
        first.kill()
        second.kill()
        await first.wait()
        await second.wait()
        await proxy.stop()

    killed = await api.run("killed-run")
    stored = killed["sample_count"]
    assert stored >= flushed_before_kill, "a sample flushed before the kill was lost"
    await assert_run_complete(api, "killed-run", stored, closed_reason="engine restarted")
    notes = [line["text"] for line in killed["runlog"]]
    assert any("engine restarted" in text for text in notes), notes
    await assert_run_complete(api, "next-run", 30)
