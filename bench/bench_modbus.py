"""Modbus driver throughput and the cost of one scan's read phase; prints one JSON object.

    .venv/bin/python bench/bench_modbus.py [--seconds 3]

The device is a pymodbus TCP server in a separate process (so it does not share the driver's
event loop or GIL) holding 100 input registers. Measured: tag values read per second with
grouped reads and with one request per tag, and the duration of `snapshot()` (what the scan
cycle calls) and `write()` while the driver polls and while the device is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loopback import free_port

from engine.hw.modbus import ModbusHardware, ModbusRegister, ModbusTcp

TAGS = 100
REGISTERS = [ModbusRegister(tag=f"R{i:03d}", table="input", address=i) for i in range(TAGS)]
SETPOINT = ModbusRegister(tag="SP", table="holding", address=0, data_type="float32")


async def serve(port: int) -> None:
    from engine.simdev.modbus_server import serve_tcp
    from engine.simdev.store import RegisterStore

    store = RegisterStore()
    for reg in REGISTERS:
        store.define(reg, reg.address)
    store.define(SETPOINT, 0.0)
    await serve_tcp(store, "127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


async def throughput(port: int, grouped: bool, seconds: float) -> dict[str, float]:
    hw = ModbusHardware(
        ModbusTcp(host="127.0.0.1", port=port, poll_interval=1e-6, group_reads=grouped),
        [*REGISTERS, SETPOINT],
    )
    await hw.start()
    try:
        while hw.cycles < 3:
            await asyncio.sleep(0.01)
        c0, r0, t0 = hw.cycles, hw.requests_sent, time.perf_counter()
        snapshot_us: list[float] = []
        write_us: list[float] = []
        i = 0
        while time.perf_counter() - t0 < seconds:
            s = time.perf_counter()
            snap = hw.snapshot()
            snapshot_us.append((time.perf_counter() - s) * 1e6)
            s = time.perf_counter()
            hw.write({"SP": float(i % 7)})
            write_us.append((time.perf_counter() - s) * 1e6)
            i += 1
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        cycles, requests = hw.cycles - c0, hw.requests_sent - r0
        assert all(snap[r.tag].value == r.address for r in REGISTERS)
    finally:
        await hw.stop()
    snapshot_us.sort()
    return {
        "tag_values_per_s": round(cycles * TAGS / elapsed),
        "read_cycles_per_s": round(cycles / elapsed, 1),
        "requests_per_cycle": round(requests / max(cycles, 1), 1),
        "snapshot_us_median": round(statistics.median(snapshot_us), 1),
        "snapshot_us_p99": round(snapshot_us[int(len(snapshot_us) * 0.99)], 1),
        "snapshot_us_max": round(snapshot_us[-1], 1),
        "write_us_median": round(statistics.median(write_us), 1),
    }


async def during_outage(seconds: float) -> dict[str, float | str]:
    """snapshot() and write() while the device is unreachable and the driver keeps reconnecting:
    the scan must not notice the outage (the tests check that no I/O happens in these calls;
    how long they take is measured here)."""
    from engine.hw.recovery import RecoveryPolicy

    hw = ModbusHardware(
        ModbusTcp(host="127.0.0.1", port=free_port(), timeout=0.2, poll_interval=0.01),
        [*REGISTERS, SETPOINT],
        policy=RecoveryPolicy(reconnect_after=0.1, error_after=3600, backoff_max=0.2),
    )
    await hw.start()
    try:
        snapshot_us: list[float] = []
        write_us: list[float] = []
        t0 = time.perf_counter()
        i = 0
        while time.perf_counter() - t0 < seconds:
            s = time.perf_counter()
            hw.snapshot()
            snapshot_us.append((time.perf_counter() - s) * 1e6)
            s = time.perf_counter()
            hw.write({"SP": float(i % 7)})
            write_us.append((time.perf_counter() - s) * 1e6)
            i += 1
            await asyncio.sleep(0.01)
        state = hw.connection_state.value
    finally:
        await hw.stop()
    snapshot_us.sort()
    write_us.sort()
    return {
        "state": state,
        "snapshot_us_median": round(statistics.median(snapshot_us), 1),
        "snapshot_us_max": round(snapshot_us[-1], 1),
        "write_us_median": round(statistics.median(write_us), 1),
        "write_us_max": round(write_us[-1], 1),
    }


async def main(seconds: float) -> dict[str, object]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        grouped = await throughput(port, True, seconds)
        per_tag = await throughput(port, False, seconds)
        outage = await during_outage(seconds)
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(10)
    return {
        "bench": "modbus",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "tags": TAGS,
        "seconds_per_case": seconds,
        "grouped": grouped,
        "one_request_per_tag": per_tag,
        "speedup": round(grouped["tag_values_per_s"] / max(per_tag["tag_values_per_s"], 1), 1),
        "device_unreachable": outage,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
    else:
        print(json.dumps(asyncio.run(main(args.seconds)), indent=2))
