"""Link benchmarks: outbox enqueue and commit costs, and replay catch-up against a real aggregator.

    .venv/bin/python bench/bench_link.py [--backlog 12000] [--skip-replay] [--scan-seconds 20]

Prints one JSON object. Results and how to read them: bench/README.md, section "Link".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from loopback import free_port
from serve_proc import SCRIPT, start_serve

from engine.link.outbox import Outbox, Synchronous
from engine.ports import EngineCommandError, MethodSaved, Registration
from protocol.messages import TagsUpdated
from protocol.models import AlarmAction, ControlAction, TagDescription, TagValue, UodDescription

ROOT = Path(__file__).resolve().parents[1]
AGGREGATOR = Path(sys.executable).parent / "setpoint-aggregator"
HEARTBEAT = 0.5


class BenchControl:
    """The engine side of EngineLink: a registration; nobody sends the benchmark commands."""

    def registration(self) -> Registration:
        return Registration(
            engine_id="testpc/Test Unit",
            computer_name="testpc",
            uod_name="Test Unit",
            uod=UodDescription(
                name="Test Unit", tags=[TagDescription(name="Counter", kind="reading", unit=None)]
            ),
            uod_hash="uodhash",
            method_hash="methodhash",
        )

    def control(self, action: ControlAction, user: str) -> None:
        raise EngineCommandError("the benchmark engine takes no commands")

    def inject(self, pcode: str, user: str) -> None:
        raise EngineCommandError("the benchmark engine takes no commands")

    def set_method(
        self, text: str, expected_version: int, line_ids: list[str | None] | None, user: str
    ) -> MethodSaved:
        raise EngineCommandError("the benchmark engine takes no commands")

    def cancel_line(self, run_log_id: str, user: str) -> None:
        raise EngineCommandError("the benchmark engine takes no commands")

    def force_line(self, run_log_id: str, user: str) -> None:
        raise EngineCommandError("the benchmark engine takes no commands")

    def resume_line(self, run_log_id: str, user: str, *, skip: bool) -> None:
        raise EngineCommandError("the benchmark engine takes no commands")

    def alarm_action(
        self,
        name: str,
        action: AlarmAction,
        user: str,
        *,
        comment: str | None,
        minutes: float | None,
        reason: str | None,
    ) -> None:
        raise EngineCommandError("the benchmark engine takes no commands")


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


def fields(n: int, tags: int) -> dict[str, Any]:
    t = 1_700_000_000.0 + n * 0.1
    return {
        "time": t,
        "run_id": "bench",
        "tags": [
            TagValue(name=f"Tag {i}", value=n + i * 0.5, unit="mL", tick=t) for i in range(tags)
        ],
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_outbox(directory: Path, synchronous: Synchronous, tags: int) -> dict[str, Any]:
    """Enqueue cost (no commit), commit of one scan's batch, and commit per message."""
    outbox = Outbox(directory / f"enqueue-{synchronous}-{tags}.sqlite3", synchronous=synchronous)
    prepared = [fields(n, tags) for n in range(5000)]
    enqueue: list[float] = []
    commit: list[float] = []
    for scan in range(500):  # 500 scans of 10 messages, one commit per scan
        for f in prepared[scan * 10 : scan * 10 + 10]:
            t = time.perf_counter()
            outbox.enqueue(TagsUpdated, f)
            enqueue.append(time.perf_counter() - t)
        t = time.perf_counter()
        outbox.flush()
        commit.append(time.perf_counter() - t)
    outbox.close()

    single = Outbox(directory / f"single-{synchronous}-{tags}.sqlite3", synchronous=synchronous)
    n = 1000
    start = time.perf_counter()
    for f in prepared[:n]:
        single.enqueue(TagsUpdated, f)
        single.flush()
    per_message = (time.perf_counter() - start) / n
    single.close()
    return {
        "synchronous": synchronous,
        "tags_per_message": tags,
        "enqueue_us": {
            "mean": round(statistics.fmean(enqueue) * 1e6, 1),
            "p50": round(pct(enqueue, 0.5) * 1e6, 1),
            "p99": round(pct(enqueue, 0.99) * 1e6, 1),
        },
        "enqueue_per_s": round(1 / statistics.fmean(enqueue)),
        "commit_per_scan_ms": {
            "mean": round(statistics.fmean(commit) * 1e3, 3),
            "p50": round(pct(commit, 0.5) * 1e3, 3),
            "p99": round(pct(commit, 0.99) * 1e3, 3),
            "max": round(max(commit) * 1e3, 3),
        },
        "commit_each_message_per_s": round(1 / per_message),
    }


async def bench_scan_path(directory: Path, seconds: float, inline_commit: bool) -> dict[str, Any]:
    """A 50 ms scan emitting 10 ten-tag messages through EngineLink (no aggregator reachable):
    the scan's own cost and the loop's lateness, with commits in the worker thread (the link) or,
    for comparison, inline on the loop (what a synchronous commit per scan would cost)."""
    from engine.link.client import EngineLink

    link = EngineLink(
        f"ws://127.0.0.1:{free_port()}", "t", directory / f"scan-{inline_commit}", BenchControl()
    )
    await link.start()
    loop = asyncio.get_running_loop()
    prepared = [fields(n, 10) for n in range(100)]
    period = 0.05
    scan_cost: list[float] = []
    lateness: list[float] = []
    next_at = loop.time() + period
    end = loop.time() + seconds
    n = 0
    while loop.time() < end:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        lateness.append(loop.time() - next_at)
        t = time.perf_counter()
        for _ in range(10):
            link.emit(TagsUpdated, **prepared[n % 100])
            n += 1
        if inline_commit:
            link.outbox.flush()
        scan_cost.append(time.perf_counter() - t)
        next_at += period
    committed_lag = link.outbox.assigned_seq - link.outbox.committed_seq
    await link.stop(flush_timeout=0)
    return {
        "commit": "inline on the loop" if inline_commit else "worker thread (EngineLink)",
        "scans": len(scan_cost),
        "scan_cost_ms": {
            "p50": round(pct(scan_cost, 0.5) * 1e3, 3),
            "p99": round(pct(scan_cost, 0.99) * 1e3, 3),
            "max": round(max(scan_cost) * 1e3, 3),
        },
        "lateness_ms": {
            "p50": round(pct(lateness, 0.5) * 1e3, 2),
            "p99": round(pct(lateness, 0.99) * 1e3, 2),
            "max": round(max(lateness) * 1e3, 2),
        },
        "uncommitted_at_end": committed_lag,
    }


async def bench_replay(directory: Path, backlog: int) -> dict[str, Any]:
    """A backlog of `backlog` 10-tag samples (an outage at 10 messages/s) replayed into a real
    aggregator while live samples keep coming at 10/s; time from registration to the Ack."""
    from engine.link.client import EngineLink
    from engine.link.machine import LinkPolicy

    agg_dir = directory / "aggregator"
    agg_dir.mkdir()
    data = ["--data-dir", str(agg_dir)]
    token = subprocess.run(
        [str(AGGREGATOR), "engine-token", "create", "bench", *data],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()[0]
    engine_dir = directory / "engine"
    seed = Outbox(engine_dir / "outbox.sqlite3")
    for n in range(backlog):
        seed.enqueue(TagsUpdated, fields(n, 10))
    seed.close()
    with open(agg_dir / "aggregator.log", "ab") as log:
        aggregator, base = start_serve(
            *data, "--heartbeat", str(HEARTBEAT), command=SCRIPT, stderr=log, cwd=ROOT
        )
    link = EngineLink(
        base.replace("http://", "ws://", 1),
        token,
        engine_dir,
        BenchControl(),
        policy=LinkPolicy(backoff_initial=0.05, backoff_max=0.2),
    )
    try:
        await link.start()
        await until(lambda: link.connected, 30, "registration")
        registered = time.monotonic()
        live = 0
        live_sent_at: list[float] = []

        async def produce_live() -> None:
            nonlocal live
            while link.acked_seq < backlog:
                live += 1
                link.emit(TagsUpdated, **fields(backlog + live, 10))
                live_sent_at.append(time.monotonic())
                await asyncio.sleep(0.1)

        producer = asyncio.create_task(produce_live())
        await until(lambda: link.acked_seq >= backlog, 600, "the backlog to be acknowledged")
        elapsed = time.monotonic() - registered
        await producer
        await until(lambda: link.acked_seq >= link.high_water, 60, "live acks")
        await link.stop(flush_timeout=10)
    finally:
        aggregator.kill()
        aggregator.wait(10)
        if aggregator.stdout is not None:
            aggregator.stdout.close()
    return {
        "backlog_messages": backlog,
        "tags_per_message": 10,
        "catch_up_s": round(elapsed, 2),
        "messages_per_s": round(backlog / elapsed),
        "times_real_time_at_10_per_s": round(backlog / 10 / elapsed),
        "live_messages_during_catch_up": live,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=12000)
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--scan-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        result: dict[str, Any] = {
            "outbox": [
                bench_outbox(directory, sync, tags)
                for sync in ("FULL", "NORMAL")
                for tags in (1, 10)
            ]
        }
        result["scan_path"] = [
            asyncio.run(bench_scan_path(directory, args.scan_seconds, inline))
            for inline in (False, True)
        ]
        if not args.skip_replay:
            result["replay"] = asyncio.run(bench_replay(directory, args.backlog))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
