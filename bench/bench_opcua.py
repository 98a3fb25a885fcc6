"""OPC UA values per second into the engine through a subscription; prints one JSON object.

    .venv/bin/python bench/bench_opcua.py [--seconds 5]

The server is asyncua in a separate process (started and stopped by PID, so it shares neither
the driver's event loop nor its GIL); every step it writes a new Double into each of its nodes.
`OpcUaHardware` subscribes to all of them at the default 100 ms sampling/publishing interval
while a 100 ms "scan" calls `snapshot()`. Measured in the benchmark (engine) process: data changes
stored per second, that process's CPU, and the duration of `snapshot()`.

- **paced**: 50 tags changing at 10 Hz (500 values/s offered), a realistic skid;
- **saturated**: 1000 tags written as fast as the server process can. The engine takes at most
  one value per tag per sampling interval (queue size 1), so this is bounded by 1000 x 10/s and by
  the server process's CPU.
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

from engine.hw.opcua import OpcUaClient, OpcUaHardware


async def serve(port: int, tags: int, period: float) -> None:
    import logging

    from asyncua import ua
    from asyncua.server.server import Server

    logging.getLogger("asyncua").setLevel(logging.CRITICAL + 1)
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench")
    ns = await server.register_namespace("urn:setpoint:bench")
    folder = await server.nodes.objects.add_object(ns, "Bench")
    ids = []
    for i in range(tags):
        node = await folder.add_variable(
            ua.NodeId(ua.String(f"T{i:03d}"), ua.Int16(ns)), f"T{i:03d}", 0.0
        )
        ids.append(node.nodeid)
    await server.start()
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        for i, node_id in enumerate(ids):
            value = ua.DataValue(ua.Variant(n + i / 1000.0, ua.VariantType.Double))
            await server.write_attribute_value(node_id, value)
        await asyncio.sleep(period)


async def measure(port: int, tags: int, seconds: float) -> dict[str, float | str]:
    hw = OpcUaHardware(
        OpcUaClient(f"opc.tcp://127.0.0.1:{port}/bench"),
        {f"T{i:03d}": f"ns=2;s=T{i:03d}" for i in range(tags)},
    )
    await hw.start()
    try:
        await asyncio.sleep(1.0)  # initial values and warm-up
        received, cpu, wall = hw.values_received, time.process_time(), time.perf_counter()
        durations = []
        end = wall + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            hw.snapshot()
            durations.append(time.perf_counter() - t)
            await asyncio.sleep(0.1)
        wall = time.perf_counter() - wall
        values = hw.values_received - received
        cpu = time.process_time() - cpu
        durations.sort()
        return {
            "tags": tags,
            "values_per_s": round(values / wall),
            "engine_cpu_percent": round(100 * cpu / wall, 1),
            "cpu_us_per_value": round(1e6 * cpu / max(values, 1), 1),
            "snapshot_p50_us": round(1e6 * statistics.median(durations), 1),
            "snapshot_max_us": round(1e6 * durations[-1], 1),
            "connection": str(hw.connection_state),
        }
    finally:
        await hw.stop()


def run_case(tags: int, period: float, seconds: float) -> dict[str, float | str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(tags), str(period)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        return asyncio.run(measure(port, tags, seconds))
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        port, tags, period = args.serve
        asyncio.run(serve(int(port), int(tags), float(period)))
        return
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "paced": run_case(50, 0.1, args.seconds),
        "saturated": run_case(1000, 0.0, args.seconds),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
