"""A scripted engine as its own process, for the engine-crash fault test.

    python -m tests.faults.engine_process URL TOKEN DATA_DIR RUN_ID [--start] [--stop-after N]

Emits RunStarted (with --start), then samples 1, 2, ... at 20 Hz; after each one it flushes the
outbox and prints `flushed N`, so the test knows what the engine has made durable. With
--stop-after N it stops the run after sample N, delivers everything and prints `done`.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from protocol.messages import RunStopped, TagsUpdated
from tests.faults.harness import ScriptedEngine, sample


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("run_id")
    parser.add_argument("--stop-after", type=int, default=0)
    args = parser.parse_args()
    engine = ScriptedEngine(args.url, args.token, args.data_dir)
    await engine.start(args.run_id)
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while not args.stop_after or engine.produced < args.stop_after:
        engine.produced += 1
        engine.link.emit(
            TagsUpdated, **sample(engine.produced, args.run_id, engine.t0, engine.period)
        )
        engine.link.flush()
        print(f"flushed {engine.produced}", flush=True)
        next_at += engine.period
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    stopped = engine.t0 + (engine.produced + 1) * engine.period
    engine.link.emit(RunStopped, time=stopped, run_id=args.run_id, stopped=stopped, reason="stop")
    await engine.link.stop(flush_timeout=30)
    print(f"done pending={engine.link.pending}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
