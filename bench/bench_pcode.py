"""P-code benchmarks: interpreter throughput on a simulated clock and the cost of one scan.

Prints one JSON object. Run: .venv/bin/python bench/bench_pcode.py
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time

from engine.lang.analyzer import analyze
from engine.lang.parser import parse
from engine.lang.runlog import RunLogChanged
from engine.lang.testing import FakeContext, interpreter_for

SCAN = 0.1


def context() -> FakeContext:
    ctx = FakeContext()
    ctx.add_tag("TT01", 20.0, "degC")
    ctx.add_tag("Level", 0.0)
    ctx.add_tag("Inlet", "VA01", choices=["VA01", "VA02"])
    ctx.add_command("PU01", pattern=r"\d+(\.\d+)? %")
    ctx.add_command("Inlet", pattern=r"VA0[12]")
    ctx.add_totalizer("Accumulated Volume", "L", 60 / 3600, ["L", "mL"])
    return ctx


def big_method(lines: int) -> str:
    """A mix like real methods: blocks, commands, marks, macros, watches, comments, thresholds."""
    out = ["Base: s", "Macro: Rinse", "    PU01: 5 %", "    Mark: rinse", "    Inlet: VA01"]
    i = 0
    while len(out) + 11 < lines:
        i += 1
        out += [
            f"# step {i}",
            f"Block: Step {i}",
            "    PU01: 10 %",
            "    Inlet: VA02",
            f"    Mark: step {i}",
            f"    Watch: TT01 > {90 + i % 5} degC",
            "        Mark: too hot",
            "    Info: progress",
            "    Call macro: Rinse",
            "    Increment run counter",
            "    0.1 End block",
        ]
    while len(out) < lines - 1:
        out.append("Mark: tail")
    out.append("Mark: end of method")
    return "\n".join(out)


def bench_throughput(lines: int = 10_000) -> dict[str, float]:
    text = big_method(lines)
    ctx = context()
    t0 = time.perf_counter()
    parsed = parse(text)
    t1 = time.perf_counter()
    findings = analyze(text, ctx)
    t2 = time.perf_counter()
    assert not [f for f in findings if f.severity == "error"], findings[:3]
    interp, _, run = interpreter_for(text, ctx, dt=SCAN)
    t3 = time.perf_counter()
    interp.start(0.0, "bench")
    interp.drain_events()
    seen: set[str] = set()
    scans = 0
    assert len(parsed.lines) == lines
    start = time.perf_counter()
    while interp.mark != "end of method":
        scans += 1
        ctx.step(SCAN)
        interp.tick(round(scans * SCAN, 9))
        seen.update(e.line.id for e in interp.drain_events() if isinstance(e, RunLogChanged))
        if scans > 10**6:
            raise RuntimeError("method did not finish")
    wall = time.perf_counter() - start
    instructions = len(seen)
    del run
    return {
        "method_lines": lines,
        "instructions_completed": instructions,
        "scans": scans,
        "simulated_seconds": round(scans * SCAN, 1),
        "wall_seconds": round(wall, 3),
        "instructions_per_second": round(instructions / wall),
        "simulated_speedup": round(scans * SCAN / wall, 1),
        "parse_ms": round((t1 - t0) * 1000, 1),
        "analyze_ms": round((t2 - t1) * 1000, 1),
        "load_ms": round((t3 - t2) * 1000, 1),
    }


def bench_burst(lines: int = 10_000) -> dict[str, float]:
    """Instructions that complete at once: limited only by the 1000-per-scan guard. Start (which
    analyzes the method) is timed apart; events are drained every scan, as the engine does."""
    text = "\n".join(f"Mark: {i}" for i in range(lines))
    ctx = context()
    interp, _, _ = interpreter_for(text, ctx)
    t = time.perf_counter()
    interp.start(0.0, "bench")
    interp.drain_events()
    start_ms = (time.perf_counter() - t) * 1000
    scans = 0
    done = interp.mark
    t = time.perf_counter()
    while interp.mark != str(lines - 1):
        scans += 1
        interp.tick(scans * SCAN)
        interp.drain_events()
    wall = time.perf_counter() - t
    ran = lines - 1 - int(done)
    return {
        "lines": lines,
        "scans": scans + 1,
        "start_ms": round(start_ms, 1),
        "instructions_per_second": round(ran / wall),
        "us_per_instruction": round(wall / ran * 1e6, 2),
    }


def bench_scan(watches: int = 25, alarms: int = 25, scans: int = 5000) -> dict[str, float]:
    lines = []
    for i in range(watches):
        lines += [f"Watch: TT01 > {100 + i} degC", "    Mark: hot"]
    for i in range(alarms):
        lines += [f"Alarm: Level > {100 + i}", "    Mark: high"]
    lines.append("Block: Hold on")
    ctx = context()
    interp, _, _ = interpreter_for("\n".join(lines), ctx)
    interp.start(0.0, "bench")
    interp.drain_events()
    assert len(interp._arms) == watches + alarms
    for n in range(1, 101):  # warm-up
        interp.tick(n * SCAN)
        interp.drain_events()
    samples = []
    for n in range(101, scans + 101):
        t = time.perf_counter()
        interp.tick(n * SCAN)
        samples.append(time.perf_counter() - t)
        interp.drain_events()
    samples.sort()
    return {
        "armed": watches + alarms,
        "scans": scans,
        "mean_us": round(statistics.fmean(samples) * 1e6, 1),
        "p50_us": round(samples[len(samples) // 2] * 1e6, 1),
        "p99_us": round(samples[int(len(samples) * 0.99)] * 1e6, 1),
        "share_of_100ms_scan_percent": round(statistics.fmean(samples) / SCAN * 100, 3),
    }


def bench_live_edit(lines: int = 10_000) -> dict[str, float]:
    """Edits of a running method: append a line; change 450 lines of the second half in place;
    delete 450 lines of the second half."""
    text = big_method(lines)
    ctx = context()
    interp, _, _ = interpreter_for(text, ctx)
    interp.start(0.0, "bench")
    for n in range(1, 50):
        interp.tick(n * SCAN)
    result: dict[str, float] = {"lines": lines}
    half = lines // 2
    rows = text.split("\n")
    cases = {
        "append_one_line_ms": text + "\nMark: appended",
        "change_450_lines_ms": "\n".join(
            rows[:half] + [r.replace("10 %", "11 %") for r in rows[half:]] + ["Mark: appended"]
        ),
        "delete_450_lines_ms": "\n".join(
            rows[:half] + [r for r in rows[half:] if "Info: progress" not in r]
        ),
    }
    for name, edited in cases.items():
        t = time.perf_counter()
        interp.set_method(edited)
        result[name] = round((time.perf_counter() - t) * 1000, 1)
    return result


def main() -> None:
    result = {
        "benchmark": "pcode",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "throughput_10k_lines": bench_throughput(),
        "burst_10k_marks": bench_burst(),
        "scan_50_armed": bench_scan(),
        "live_edit_10k_lines": bench_live_edit(),
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
